// ELF and Multiboot loading.
import MachineCore
import CLibElf
