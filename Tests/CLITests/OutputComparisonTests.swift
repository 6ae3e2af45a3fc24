import Testing
import TestSupport

@Suite struct OutputComparisonTests {
    @Test func identicalOutputMatches() {
        #expect(OutputComparison.equalUpToOneRepeatedRecord("a\nb\n", "a\nb\n"))
    }

    @Test func oneRepeatedLineMatches() {
        #expect(OutputComparison.equalUpToOneRepeatedRecord("a\nb\nb\nc\n", "a\nb\nc\n"))
        #expect(OutputComparison.equalUpToOneRepeatedRecord("a\na\n", "a\n"))
        #expect(OutputComparison.equalUpToOneRepeatedRecord("a\nb\nc\nc\n", "a\nb\nc\n"))
        // The repeated line shares a prefix with the next one.
        #expect(OutputComparison.equalUpToOneRepeatedRecord("t x\nt count=1\nt count=1\nt samples\n",
                                                            "t x\nt count=1\nt samples\n"))
    }

    @Test func oneRepeatedPartialLineMatches() {
        #expect(OutputComparison.equalUpToOneRepeatedRecord("ab\ncdcdef\n", "ab\ncdef\n"))
    }

    @Test func lossOrReorderOrTwoRepeatsDoNotMatch() {
        #expect(!OutputComparison.equalUpToOneRepeatedRecord("a\nc\n", "a\nb\nc\n"))
        #expect(!OutputComparison.equalUpToOneRepeatedRecord("b\na\n", "a\nb\n"))
        #expect(!OutputComparison.equalUpToOneRepeatedRecord("a\na\nb\nb\n", "a\nb\n"))
        #expect(!OutputComparison.equalUpToOneRepeatedRecord("a\nb\na\nb\n", "a\nb\n"))
        #expect(!OutputComparison.equalUpToOneRepeatedRecord("a\nX\nb\n", "a\nb\n"))
    }
}
