// The `lockstep` command: filled in by the CLI work (run, doctor, primary, backup, pair, bench).
print("lockstep: not built yet")
