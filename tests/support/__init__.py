"""What the tests share: helpers, replicas of peers' hooks, private daemons and fleet hosts (one home each)."""
