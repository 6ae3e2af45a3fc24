/// The shape of a data point's marker.
enum MarkerShape: Sendable {
    case circle, square, diamond, star
}
