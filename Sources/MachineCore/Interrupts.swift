/// Something that collects interrupt request lines: an 8259 PIC, or the PA-RISC EIRR.
public protocol InterruptController: AnyObject {
    /// Sets the level of input `line` (level-triggered semantics; an edge is low then high).
    func setLevel(_ level: Bool, line: Int)
}

/// One interrupt request line from a device to a controller, injected into the device.
public struct InterruptLine {
    public let controller: any InterruptController
    public let number: Int

    public init(controller: any InterruptController, number: Int) {
        self.controller = controller
        self.number = number
    }

    /// Drives the line to `level`.
    public func set(_ level: Bool) { controller.setLevel(level, line: number) }
    public func raise() { set(true) }
    public func lower() { set(false) }
    /// A rising edge: low, then high.
    public func pulse() { set(false); set(true) }
}
