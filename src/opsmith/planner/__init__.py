"""From a request to a plan: playbook choice, tool mapping, arguments, risk, compliance, context."""
