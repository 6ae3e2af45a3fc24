import Foundation
import FuzzTargets
import Testing

/// Replays every input in Fuzz/corpus/TARGET (the inputs scripts/fuzz kept, among them any that
/// once found a bug) and every seed through the fuzz targets: a regression traps here.
@Suite struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz/corpus")

    static func inputs(_ target: FuzzTarget) -> [URL] {
        let directory = corpus.appendingPathComponent(target.rawValue)
        return ((try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? [])
            .filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.path < $1.path }
    }

    @Test(arguments: FuzzTarget.allCases)
    func theCommittedCorpusReplaysCleanly(_ target: FuzzTarget) throws {
        let files = Self.inputs(target)
        #expect(!files.isEmpty, "Fuzz/corpus/\(target.rawValue) is empty")
        for file in files { target.run(Array(try Data(contentsOf: file))) }
    }

    @Test(arguments: FuzzTarget.allCases)
    func theSeedsReplayCleanly(_ target: FuzzTarget) {
        for seed in target.seeds() { target.run(seed) }
    }
}
