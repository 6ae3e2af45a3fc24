// The host side of a run.
import MachineCore
