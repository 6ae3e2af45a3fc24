import Foundation

/// The bundled guest kernels (scripts/build-guests puts them in guests/build/ARCH/NAME.elf).
struct GuestCatalog: Sendable {
    let directory: String

    /// Finds guests/build: `explicit`, else under the current directory, else above the
    /// executable (.build/release/lockstep lives in the package).
    static func locate(explicit: String?, executable: String) throws -> GuestCatalog {
        var places: [String] = []
        if let explicit {
            places.append(explicit)
        } else {
            places.append(FileManager.default.currentDirectoryPath + "/guests/build")
            var url = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
            while url.path != "/" {
                places.append(url.appendingPathComponent("guests/build").path)
                url.deleteLastPathComponent()
            }
        }
        for place in places {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: place + "/parisc", isDirectory: &isDirectory) && isDirectory.boolValue
                || FileManager.default.fileExists(atPath: place + "/x86", isDirectory: &isDirectory) && isDirectory.boolValue
            {
                return GuestCatalog(directory: URL(fileURLWithPath: place).standardizedFileURL.path)
            }
        }
        throw BenchError.noGuests(Array(places.prefix(3)))
    }

    func path(_ arch: String, _ name: String) -> String { "\(directory)/\(arch)/\(name).elf" }

    func has(_ arch: String, _ name: String) -> Bool {
        FileManager.default.fileExists(atPath: path(arch, name))
    }
}
