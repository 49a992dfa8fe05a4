#!/bin/busybox sh
# /init of the dvms test guest (busybox initramfs; no disk, no network).
# Kernel arguments: dvms.workload=idle|spin|dirty (default idle), dvms.dirty_mib=N (default 8),
# dvms.tick=SECONDS (default 1). Everything goes to the serial console (ttyS0):
# "GUEST_BOOTED ..." once, then "tick N UPTIME" every tick, so a host can check that the
# guest keeps running (e.g. across a live migration).
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
exec >/dev/ttyS0 2>&1
MODE=idle; DIRTY=8; TICK=1
for a in $(cat /proc/cmdline); do
  case "$a" in
    dvms.workload=*) MODE=${a#dvms.workload=};;
    dvms.dirty_mib=*) DIRTY=${a#dvms.dirty_mib=};;
    dvms.tick=*) TICK=${a#dvms.tick=};;
  esac
done
echo "GUEST_BOOTED uptime=$(cut -d' ' -f1 /proc/uptime) workload=$MODE"
case "$MODE" in
  spin) (while :; do :; done) & ;;
  dirty) mount -t ramfs ramfs /mnt
         dd if=/dev/urandom of=/mnt/src bs=1M count="$DIRTY" 2>/dev/null
         (while :; do dd if=/mnt/src of=/mnt/dst bs=1M conv=notrunc 2>/dev/null; done) & ;;
esac
i=0
while :; do i=$((i+1)); echo "tick $i $(cut -d' ' -f1 /proc/uptime)"; sleep "$TICK"; done
