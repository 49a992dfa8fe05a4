"""The real world: libvirt hypervisors, agents, local clusters, Grid'5000 reservations."""
