// The x86 engine on KVM.
import MachineCore
