import Foundation
import MachineCore

/// Machine snapshots in files (`lockstep run --snapshot-at/--snapshot-file`, `--restore`).
public enum SnapshotFile {
    /// Writes a snapshot of `machine` to `path`: first to a temporary file next to it, flushed
    /// to disk, then renamed over `path`, so a failure never leaves a partial snapshot there.
    public static func save(_ machine: any Machine, identity: SnapshotIdentity, host: SnapshotHostState,
                            to path: String) throws -> MachineSnapshot.Summary
    {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw SnapshotError.writeFailed("\(path): cannot create the snapshot file (\(String(cString: strerror(errno))))")
        }
        var renamed = false
        defer { if !renamed { try? FileManager.default.removeItem(at: temporary) } }
        let output: FileOutput
        do { output = FileOutput(path: path, handle: try FileHandle(forWritingTo: temporary)) } catch {
            throw SnapshotError.writeFailed("\(path): cannot write the snapshot: \(error.localizedDescription)")
        }
        let summary = try MachineSnapshot.write(machine, identity: identity, host: host, to: output)
        try output.finish()
        guard rename(temporary.path, path) == 0 else {
            throw SnapshotError.writeFailed("\(path): cannot put the snapshot in place (\(String(cString: strerror(errno))))")
        }
        renamed = true
        return summary
    }

    /// Opens the snapshot at `path` and reads everything but RAM (see `SnapshotReader`).
    public static func open(_ path: String) throws(SnapshotError) -> SnapshotReader {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .io("\(path): no such snapshot file")
        }
        guard !isDirectory.boolValue else { throw .io("\(path): a snapshot must be a regular file") }
        let handle: FileHandle
        do { handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path)) } catch {
            throw .io("\(path): cannot open the snapshot: \(error.localizedDescription)")
        }
        do {
            return try SnapshotReader(input: FileInput(path: path, handle: handle))
        } catch {
            throw error.inFile(path)
        }
    }

    /// Appends to a file through `FileHandle`.
    final class FileOutput: SnapshotOutput {
        let path: String
        let handle: FileHandle

        init(path: String, handle: FileHandle) {
            self.path = path
            self.handle = handle
        }

        func write(_ bytes: [UInt8]) throws(SnapshotError) {
            do { try handle.write(contentsOf: bytes) } catch {
                throw .writeFailed("\(path): cannot write the snapshot: \(error.localizedDescription)")
            }
        }

        /// Flushes the file to disk and closes it.
        func finish() throws(SnapshotError) {
            do {
                try handle.synchronize()
                try handle.close()
            } catch {
                throw .writeFailed("\(path): cannot write the snapshot: \(error.localizedDescription)")
            }
        }
    }

    /// Reads a file through `FileHandle`.
    public final class FileInput: SnapshotInput {
        let path: String
        let handle: FileHandle

        init(path: String, handle: FileHandle) {
            self.path = path
            self.handle = handle
        }

        deinit { try? handle.close() }

        public func read(upTo count: Int) throws(SnapshotError) -> [UInt8] {
            var bytes: [UInt8] = []
            while bytes.count < count {
                let chunk: Data?
                do { chunk = try handle.read(upToCount: count - bytes.count) } catch {
                    throw .io("\(path): cannot read the snapshot: \(error.localizedDescription)")
                }
                guard let chunk, !chunk.isEmpty else { break }
                bytes += chunk
            }
            return bytes
        }
    }
}

extension SnapshotError {
    /// The error with the file's name in front of its line (reading errors name the file).
    public func inFile(_ path: String) -> SnapshotError {
        switch self {
        case .io, .writeFailed: self
        default: .io("\(path): \(description)")
        }
    }
}
