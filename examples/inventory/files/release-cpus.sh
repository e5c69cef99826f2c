#!/bin/sh
# Give the CPUs of a passthrough guest back to the host once it is gone.
# libvirt >= 10.5 passes the shutoff reason as the 4th argument (destroyed, shutdown, crashed ...).
echo "release-cpus: guest $1 released (reason: $4)"
