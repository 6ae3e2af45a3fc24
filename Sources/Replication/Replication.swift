// Primary/backup replication.
import MachineCore
