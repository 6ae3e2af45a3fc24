import Foundation

/// The host's x86 CPU as Linux describes it in /proc/cpuinfo: vendor, family and model.
///
/// Machines of the same kind are Intel on some hosts and AMD on others, so anything
/// vendor-specific (the PMU's branch event, its skid) is looked up from this at run time.
public struct HostCPU: Hashable, Sendable, Codable {
    /// `vendor_id` (`GenuineIntel`, `AuthenticAMD`, ...).
    public var vendor: String
    /// `cpu family` (the display family: base family plus extended family).
    public var family: Int
    /// `model` (the display model: extended model in the high nibble).
    public var model: Int
    /// `model name`.
    public var name: String

    public init(vendor: String, family: Int, model: Int, name: String) {
        self.vendor = vendor
        self.family = family
        self.model = model
        self.name = name
    }

    /// The first processor in `/proc/cpuinfo`, or nil if it cannot be read or parsed.
    public static func current(cpuinfo path: String = "/proc/cpuinfo") -> HostCPU? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return parse(text)
    }

    /// Parses the first processor of a /proc/cpuinfo text.
    static func parse(_ text: String) -> HostCPU? {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.trimmingCharacters(in: .whitespaces).isEmpty {
                if !fields.isEmpty { break }  // the end of the first processor's block
                continue
            }
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = parts[0].trimmingCharacters(in: .whitespaces)
            if fields[key] == nil { fields[key] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        guard let vendor = fields["vendor_id"], let family = fields["cpu family"].flatMap({ Int($0) }),
              let model = fields["model"].flatMap({ Int($0) })
        else { return nil }
        return HostCPU(vendor: vendor, family: family, model: model, name: fields["model name"] ?? "")
    }

    /// "GenuineIntel family 6 model 207 (Intel(R) Xeon(R) Processor)".
    public var summary: String {
        "\(vendor) family \(family) model \(model)" + (name.isEmpty ? "" : " (\(name))")
    }
}
