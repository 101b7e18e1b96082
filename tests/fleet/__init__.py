"""Real fleets for tests: loopback sshd processes started and stopped by the tests themselves."""
