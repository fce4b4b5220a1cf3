"""What people, agents and the scheduler do with previews: the commands and the read model
every transport shares, the dashboard's pages, the scheduler's passes, the metrics."""
