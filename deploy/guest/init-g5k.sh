#!/bin/busybox sh
# /init of the dvms Grid'5000-like guest (image v2: busybox initramfs + virtio modules +
# dropbear + sftp-server + cpulimit + dvms-memtouch).
# Kernel arguments: dvms.ip=ADDR[/PREFIX] (eth0; PREFIX defaults to dvms.prefix=N, else 24),
# dvms.gw=ADDR (default route, optional),
# dvms.sshd=0 (never start the ssh server: a VM that never answers on port 22),
# dvms.tick=SECONDS (default 5). The serial console (ttyS0) gets "GUEST_BOOTED ...",
# "DISK ...", "SSHD ..." then "tick N UPTIME" lines.
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /var/run /var/log /tmp /root
mount -t devpts devpts /dev/pts
exec >/dev/ttyS0 2>&1
IP=""; GW=""; SSHD=1; TICK=5; PREFIX=24
for a in $(cat /proc/cmdline); do
  case "$a" in
    dvms.ip=*) IP=${a#dvms.ip=};;
    dvms.gw=*) GW=${a#dvms.gw=};;
    dvms.prefix=*) PREFIX=${a#dvms.prefix=};;
    dvms.sshd=*) SSHD=${a#dvms.sshd=};;
    dvms.tick=*) TICK=${a#dvms.tick=};;
  esac
done
case "$IP" in ""|*/*) ;; *) IP="$IP/$PREFIX";; esac
for m in $(cat /lib/modules/order); do insmod "/lib/modules/$m.ko" || echo "MODULE $m failed"; done
echo "GUEST_BOOTED uptime=$(cut -d' ' -f1 /proc/uptime) ip=$IP"
ip link set lo up
if [ -n "$IP" ]; then
  i=0
  while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  ip addr add "$IP" dev eth0 && ip link set eth0 up || echo "NET eth0 failed"
  [ -n "$GW" ] && ip route add default via "$GW"
fi
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
if [ -b /dev/vda ]; then
  # the backing image's first sector holds its marker; sector 8 is this VM's own (COW)
  echo "DISK $(dd if=/dev/vda bs=512 count=1 2>/dev/null | tr -cd 'A-Za-z0-9_=. -' | cut -c1-64)"
  echo "booted $(cut -d' ' -f1 /proc/uptime)" | dd of=/dev/vda bs=512 seek=8 conv=notrunc,sync 2>/dev/null
else
  echo "DISK none"
fi
if [ "$SSHD" != 0 ]; then
  dropbear -r /etc/dropbear/host_key -p 22 -s -E -P /var/run/dropbear.pid && echo "SSHD started"
else
  echo "SSHD disabled (dvms.sshd=0)"
fi
n=0
while :; do n=$((n+1)); echo "tick $n $(cut -d' ' -f1 /proc/uptime)"; sleep "$TICK"; done
