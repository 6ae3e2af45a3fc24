// Placeholder until tests are added.
