// Deterministic device models.
import MachineCore
