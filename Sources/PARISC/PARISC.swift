// The PA-RISC emulator engine.
import MachineCore
