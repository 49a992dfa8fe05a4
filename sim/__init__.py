"""The simulated world: sites, hosts, VMs, network, load, migrations, power, metrics."""
