// The Swift KVM layer: the only importer of CKVM.
import CKVM
