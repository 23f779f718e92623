"""The guest image: a Debian cloud kernel and a busybox initramfs, built from
Debian packages on this machine.

    python -m mininet_scenarios.guest_image [--dir DIR]    (default /var/cache/nsgre/guest)

Idempotent: when ``DIR/image.json`` says the image was built from the same
recipe (this file's scripts, the probe helper's source, the module list and
the busybox binary), it returns at once without asking apt anything.

- kernel: ``apt-get download`` of the package the ``linux-image-cloud-amd64``
  metapackage depends on, ``dpkg-deb -x``, its ``vmlinuz`` and the virtio
  network modules (nothing is installed, nothing lands in /boot);
- busybox from ``busybox-static`` with a symlink per applet; ``/init`` is
  busybox's init, run by ``/etc/inittab``;
- ``nsgre-raw``: a static helper (C, compiled here with gcc) that sends
  Ethernet frames given as hex and prints the probe markers that arrive,
  the guest's side of ``mininet_scenarios.probe`` (busybox has no raw
  socket tool, and Debian's static busybox's ``nc`` has no UDP);
- the initramfs: ``busybox cpio -o -H newc`` of a staging tree holding
  ``/dev/console`` (without it the guest prints nothing).

What the guest does (its interface to the emulation and the tests):

- it learns its address, prefix, router and MTU only by DHCP (busybox
  ``udhcpc``, kept running for renewals) and says so on its console (the
  first serial port) in machine-readable lines::

      nsgre-guest: dhcp 10.1.1.2/24 mtu 1458 router 10.1.1.254
      nsgre-guest: dhcp failed            (no answer yet; it keeps asking)

- ``nsgre-guest: ready`` once its command channel is open: a shell on the
  second serial port.  The host writes ``NONCE BASE64(COMMAND)`` and a
  newline; the guest runs the command with ``sh -c`` and writes its output
  (stdout and stderr), then ``@@nsgre-end NONCE STATUS@@`` on a line;
- TCP port 7000 (``STREAM_PORT``) sends exactly ``STREAM_BYTES`` bytes
  (``STREAM_LINE`` repeated, cut to length) and closes; TCP port 7001
  (``COUNT_PORT``) reads until the peer closes its side, then answers with
  the number of bytes it read;
- the kernel answers ping; IPv6 is off (``ipv6.disable=1``).

One exception, for ``bench/bench_guest_boot.py`` only (it measures what
DHCP costs a boot): ``static_cmdline()`` adds ``nsgre.static=ADDRESS/PREFIX,MTU``
to the kernel command line, and then ``/init`` sets that address and MTU
itself, says ``nsgre-guest: static 10.1.1.2/24 mtu 1458`` and runs no DHCP
client.  The emulation never passes it (``Image.cmdline`` is ``CMDLINE``):
its guests, ``--guests qemu|libvirt``, learn their address only by DHCP.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = Path("/var/cache/nsgre/guest")
METAPACKAGE = "linux-image-cloud-amd64"
BUSYBOX = Path("/bin/busybox")

#: insmod order: each needs the ones before (virtio_ring first, or
#: "Unknown symbol virtio_break_device").
MODULES = ("drivers/virtio/virtio_ring", "drivers/virtio/virtio",
           "drivers/virtio/virtio_pci_legacy_dev", "drivers/virtio/virtio_pci_modern_dev",
           "drivers/virtio/virtio_pci", "net/core/failover", "drivers/net/net_failover",
           "drivers/net/virtio_net")

STREAM_PORT = 7000
COUNT_PORT = 7001
STREAM_LINE = b"nsgre-guest-stream\n"
STREAM_BYTES = 4 * 1024 * 1024

#: The kernel command line: the console, no IPv6, and nothing about the
#: network (that comes by DHCP).
CMDLINE = "console=ttyS0 panic=-1 quiet ipv6.disable=1"
#: The parameter ``/init`` takes a static address from (``static_cmdline``).
STATIC_PARAM = "nsgre.static"


def static_cmdline(address, mtu: int | None = None, cmdline: str = CMDLINE) -> str:
    """``cmdline`` with a static address (``ADDRESS/PREFIX``) and MTU for
    ``/init`` to set instead of asking DHCP: for ``bench/bench_guest_boot.py``,
    which compares a boot with DHCP against the same boot without it.  Never
    used by the emulation."""
    value = str(address) + ("" if mtu is None else f",{int(mtu)}")
    if "/" not in value or " " in value:
        raise ValueError(f"{STATIC_PARAM}: want ADDRESS/PREFIX[,MTU], not {value!r}")
    return f"{cmdline} {STATIC_PARAM}={value}"


def stream_data(n: int = STREAM_BYTES) -> bytes:
    """What port 7000 sends, for a receiver to compare with."""
    return (STREAM_LINE * (n // len(STREAM_LINE) + 1))[:n]


# -- what runs in the guest ---------------------------------------------------
INITTAB = """\
::sysinit:/etc/nsgre/rc
ttyS1::respawn:/bin/nsgre-control
::respawn:/sbin/udhcpc -f -i eth0 -s /etc/nsgre/dhcp -O mtu -t 3 -T 1 -A 1
::respawn:nc -ll -p {stream} -e /bin/nsgre-stream
::respawn:nc -ll -p {count} -e /bin/nsgre-count
""".format(stream=STREAM_PORT, count=COUNT_PORT)

RC = """\
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /tmp /run
for m in {modules}; do
    insmod /lib/modules/$m.ko || echo "nsgre-guest: insmod $m failed" > /dev/console
done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 200 ]; do usleep 20000; i=$((i + 1)); done
ip link set lo up
ip link set eth0 up
echo "nsgre-guest: up $(cat /sys/class/net/eth0/address)" > /dev/console
# nsgre.static=ADDRESS/PREFIX,MTU: bench/bench_guest_boot.py only (the
# emulation never passes it).  The address and MTU are set here and no DHCP
# client runs: inittab's /sbin/udhcpc (by path: busybox runs an applet named
# without one as itself, whatever PATH holds) is then a stub that sleeps.
read -r cmdline < /proc/cmdline
for arg in $cmdline; do
    case "$arg" in
    {param}=*)
        static=${{arg#{param}=}}
        addr=${{static%%,*}}
        [ "$addr" = "$static" ] || ip link set eth0 mtu "${{static#*,}}"
        ip addr add "$addr" dev eth0
        rm -f /sbin/udhcpc
        printf '#!/bin/sh\\nexec sleep 2147483647\\n' > /sbin/udhcpc
        chmod 755 /sbin/udhcpc
        echo "nsgre-guest: static $addr mtu $(cat /sys/class/net/eth0/mtu)" > /dev/console
        ;;
    esac
done
""".format(modules=" ".join(m.rsplit("/", 1)[1] for m in MODULES), param=STATIC_PARAM)

# udhcpc's script: the only source of the guest's address, prefix, router and MTU.
DHCP = """\
#!/bin/sh
say() { echo "nsgre-guest: $*" > /dev/console; }
event=$1
case "$event" in
deconfig)
    ip -4 addr flush dev "$interface"
    rm -f /run/nsgre-addr
    ip link set "$interface" up
    ;;
bound|renew)
    eval "$(ipcalc -p "$ip" "$subnet")"
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    if [ "$(cat /run/nsgre-addr 2>/dev/null)" != "$ip/$PREFIX" ]; then
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/$PREFIX" dev "$interface"
        echo "$ip/$PREFIX" > /run/nsgre-addr
    fi
    gw=""
    if [ -n "$router" ]; then
        set -- $router
        gw=" router $1"
        ip route replace default via "$1" dev "$interface"
    fi
    [ "$event" = bound ] && word=dhcp || word=renew
    say "$word $ip/$PREFIX mtu $(cat /sys/class/net/$interface/mtu)$gw"
    ;;
leasefail|nak)
    say "dhcp failed"
    ;;
esac
exit 0
"""

STREAM = """\
#!/bin/sh
yes {line} | head -c {n}
""".format(line=STREAM_LINE.decode().strip(), n=STREAM_BYTES)

COUNT = """\
#!/bin/sh
wc -c | tr -d ' '
"""

# The command channel on ttyS1 (init makes it this script's stdin/stdout).
CONTROL = """\
#!/bin/sh
stty raw -echo clocal
echo "nsgre-guest: ready" > /dev/console
while read -r nonce b64; do
    [ -n "$nonce" ] || continue
    cmd=$(echo "$b64" | base64 -d)
    sh -c "$cmd" < /dev/null 2>&1
    printf '\\n@@nsgre-end %s %d@@\\n' "$nonce" $?
done
"""

# The guest's side of mininet_scenarios.probe: raw frames out, markers in.
RAW_C = r"""
/* nsgre-raw: send Ethernet frames given as hex; print probe markers that arrive.
 *   nsgre-raw send IFACE COPIES HEX...   each frame COPIES times, 50 ms apart
 *   nsgre-raw listen IFACE               "ready", then one line per marker
 *                                        (SRC>DST, or SRC>DST@VID if tagged) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char MAGIC[] = "nsgre-probe:";

static int open_iface(const char *name)
{
    int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    struct sockaddr_ll sll = {0};
    if (s < 0) { perror("socket"); exit(1); }
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = if_nametoindex(name);
    if (!sll.sll_ifindex) { perror(name); exit(1); }
    if (bind(s, (struct sockaddr *)&sll, sizeof sll) < 0) { perror("bind"); exit(1); }
    return s;
}

static int unhex(const char *h, unsigned char *out, int max)
{
    int n = 0;
    while (h[0] && h[1] && n < max) {
        unsigned int b;
        if (sscanf(h, "%2x", &b) != 1) return -1;
        out[n++] = b;
        h += 2;
    }
    return h[0] ? -1 : n;
}

static int do_send(const char *iface, int copies, int n, char **hex)
{
    int s = open_iface(iface), i, c;
    unsigned char buf[2048];
    for (c = 0; c < copies; c++) {
        for (i = 0; i < n; i++) {
            int len = unhex(hex[i], buf, sizeof buf);
            if (len < 14) { fprintf(stderr, "bad frame %d\n", i); return 1; }
            if (send(s, buf, len, 0) != len) { perror("send"); return 1; }
        }
        usleep(50000);
    }
    return 0;
}

static int do_listen(const char *iface)
{
    int s = open_iface(iface), on = 1;
    unsigned char buf[65536];
    union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(struct tpacket_auxdata))]; } ctl;
    setsockopt(s, SOL_PACKET, PACKET_AUXDATA, &on, sizeof on);
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        struct sockaddr_ll from;
        struct iovec iov = {buf, sizeof buf};
        struct msghdr msg = {&from, sizeof from, &iov, 1, &ctl, sizeof ctl, 0};
        struct cmsghdr *cm;
        int vlan = -1, len = recvmsg(s, &msg, 0);
        unsigned char *at, *end;
        if (len < 0) { perror("recvmsg"); return 1; }
        if (from.sll_pkttype == PACKET_OUTGOING) continue;
        at = memmem(buf, len, MAGIC, sizeof MAGIC - 1);
        if (!at) continue;
        for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            struct tpacket_auxdata *aux = (void *)CMSG_DATA(cm);
            if (cm->cmsg_level == SOL_PACKET && cm->cmsg_type == PACKET_AUXDATA
                && (aux->tp_status & TP_STATUS_VLAN_VALID))
                vlan = aux->tp_vlan_tci & 0xfff;
        }
        if (vlan < 0 && len >= 16 && buf[12] == 0x81 && buf[13] == 0)
            vlan = ((buf[14] << 8) | buf[15]) & 0xfff;
        at += sizeof MAGIC - 1;
        for (end = at; end < buf + len && *end > ' ' && *end < 0x7f; end++)
            ;
        if (vlan < 0) printf("%.*s\n", (int)(end - at), at);
        else printf("%.*s@%d\n", (int)(end - at), at, vlan);
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "send"))
        return do_send(argv[2], atoi(argv[3]), argc - 4, argv + 4);
    if (argc == 3 && !strcmp(argv[1], "listen"))
        return do_listen(argv[2]);
    fprintf(stderr, "usage: nsgre-raw send IFACE COPIES HEX... | listen IFACE\n");
    return 2;
}
"""

#: Files of the initramfs besides busybox, the helper and the modules: path -> (mode, text).
FILES = {
    "etc/inittab": (0o644, INITTAB),
    "etc/nsgre/rc": (0o755, RC),
    "etc/nsgre/dhcp": (0o755, DHCP),
    "bin/nsgre-stream": (0o755, STREAM),
    "bin/nsgre-count": (0o755, COUNT),
    "bin/nsgre-control": (0o755, CONTROL),
}
RECIPE_VERSION = 1


class ImageError(RuntimeError):
    pass


@dataclass(frozen=True)
class Image:
    dir: Path
    kernel: Path
    initrd: Path
    kernel_version: str
    cmdline: str = CMDLINE


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise ImageError(f"{' '.join(map(str, cmd))}: "
                         f"{(proc.stderr.strip() or proc.stdout.strip())[-2000:]}")
    return proc


def _recipe() -> str:
    if not BUSYBOX.exists():
        raise ImageError(f"{BUSYBOX} is missing: install busybox-static (make setup does)")
    h = hashlib.sha256()
    h.update(json.dumps([RECIPE_VERSION, MODULES, CMDLINE, sorted(FILES.items())]).encode())
    h.update(RAW_C.encode())
    h.update(BUSYBOX.read_bytes())
    return h.hexdigest()


def _is_static(path: Path) -> bool:
    """An ELF without a program interpreter (PT_INTERP) is statically linked."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3
               for i in range(phnum))


def image(directory: Path = DEFAULT_DIR) -> Image | None:
    """The image built in ``directory`` if it is complete and current."""
    manifest = directory / "image.json"
    try:
        info = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    img = Image(directory, directory / info["kernel"], directory / info["initrd"],
                info["kernel_version"])
    if info.get("recipe") != _recipe() or not (img.kernel.exists() and img.initrd.exists()):
        return None
    return img


def build(directory: Path = DEFAULT_DIR, log=lambda msg: None) -> Image:
    """Build the image unless it is already there and current."""
    directory = Path(directory)
    img = image(directory)
    if img is not None:
        return img
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)        # another process may be building it
        img = image(directory)
        if img is not None:
            return img
        t0 = time.monotonic()
        version, kdir = _kernel(directory, log)
        initrd = directory / "initramfs.cpio"
        _initramfs(kdir, initrd, log)
        manifest = {"recipe": _recipe(), "kernel_version": version,
                    "kernel": str((kdir / "vmlinuz").relative_to(directory)),
                    "initrd": initrd.name, "built": time.strftime("%Y-%m-%d %H:%M:%S")}
        tmp = directory / "image.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=1))
        tmp.replace(directory / "image.json")
        log(f"guest image built in {directory} ({time.monotonic() - t0:.1f} s): "
            f"kernel {version}, initramfs {initrd.stat().st_size // 1024} KiB")
    return image(directory)


# -- the kernel ---------------------------------------------------------------
def _kernel(directory: Path, log) -> tuple[str, Path]:
    """The extracted kernel: reused when one is there (no apt needed), else
    the cloud kernel the metapackage points at now."""
    present = sorted(p for p in (directory / "kernel").glob("*")
                     if (p / "vmlinuz").exists() and (p / ".complete").exists())
    if present:
        return present[-1].name, present[-1]
    package = _kernel_package()
    version = package[len("linux-image-"):]
    kdir = directory / "kernel" / version
    # Downloaded as root into a private directory (apt's sandbox user could not write there).
    download = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", package]
    with tempfile.TemporaryDirectory(prefix="nsgre-kernel-") as tmp:
        log(f"downloading {package}")
        try:
            _run(download, cwd=tmp)
        except ImageError:
            _run(["apt-get", "update", "-qq"])    # lists older than the archive
            _run(download, cwd=tmp)
        deb = next(Path(tmp).glob("*.deb"))
        root = Path(tmp) / "root"
        _run(["dpkg-deb", "-x", str(deb), str(root)])
        shutil.rmtree(kdir, ignore_errors=True)
        (kdir / "modules").mkdir(parents=True)
        vmlinuz = next((root / "boot").glob("vmlinuz-*"))
        shutil.copy(vmlinuz, kdir / "vmlinuz")
        mods = next((root / "lib" / "modules").iterdir()) / "kernel"
        for m in MODULES:
            src = next(mods.parent.glob(f"kernel/{m}.ko*"), None)
            if src is None:
                raise ImageError(f"{package} has no module {m}")
            if src.suffix == ".xz":
                import lzma
                (kdir / "modules" / (src.name[:-3])).write_bytes(lzma.decompress(src.read_bytes()))
            elif src.suffix == ".zst":
                raise ImageError(f"{src.name}: zstd-compressed modules are not supported")
            else:
                shutil.copy(src, kdir / "modules" / src.name)
        (kdir / ".complete").write_text(package + "\n")
    return version, kdir


def _kernel_package() -> str:
    def depends():
        out = subprocess.run(["apt-cache", "show", "--no-all-versions", METAPACKAGE],
                             capture_output=True, text=True).stdout
        m = re.search(r"^Depends:.*?\b(linux-image-[0-9][^ ,]*-cloud-amd64)\b", out, re.M)
        return m.group(1) if m else None
    package = depends()
    if package is None:
        _run(["apt-get", "update", "-qq"])
        package = depends()
    if package is None:
        raise ImageError(f"cannot resolve {METAPACKAGE} to a kernel package (apt-cache show)")
    return package


# -- the initramfs ------------------------------------------------------------
def _initramfs(kdir: Path, out: Path, log):
    if not _is_static(BUSYBOX):
        raise ImageError(f"{BUSYBOX} is not statically linked: install busybox-static")
    with tempfile.TemporaryDirectory(prefix="nsgre-initramfs-") as tmp:
        root = Path(tmp) / "root"
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc/nsgre", "proc", "sys", "dev",
                  "tmp", "run", "root", "lib/modules"):
            (root / d).mkdir(parents=True, exist_ok=True)
        shutil.copy(BUSYBOX, root / "bin" / "busybox")
        applets = _run([str(BUSYBOX), "--list-full"]).stdout.split()
        for applet in applets:
            link = root / applet
            if not link.exists() and not link.is_symlink():
                link.symlink_to(os.path.relpath(root / "bin" / "busybox", link.parent))
        (root / "init").symlink_to("bin/busybox")       # busybox init, by its name
        if not (root / "sbin" / "udhcpc").is_symlink():
            raise ImageError(f"{BUSYBOX} has no sbin/udhcpc applet (inittab runs it by path)")
        for path, (mode, text) in FILES.items():
            (root / path).write_text(text)
            (root / path).chmod(mode)
        for m in MODULES:
            name = m.rsplit("/", 1)[1] + ".ko"
            shutil.copy(kdir / "modules" / name, root / "lib" / "modules" / name)
        _compile_raw(root / "bin" / "nsgre-raw", Path(tmp))
        os.mknod(root / "dev" / "console", 0o600 | 0o020000, os.makedev(5, 1))
        names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        tmp_out = out.with_suffix(".tmp")
        with open(tmp_out, "wb") as f:
            proc = subprocess.run([str(BUSYBOX), "cpio", "-o", "-H", "newc"], cwd=root,
                                  input="\n".join(names).encode() + b"\n", stdout=f,
                                  stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise ImageError(f"busybox cpio: {proc.stderr.decode().strip()}")
        tmp_out.replace(out)


def _compile_raw(target: Path, tmp: Path):
    src = tmp / "nsgre-raw.c"
    src.write_text(RAW_C)
    if shutil.which("gcc") is None:
        raise ImageError("gcc is missing: it compiles the guest's probe helper "
                         "(install gcc and libc6-dev; make setup does)")
    _run(["gcc", "-static", "-Os", "-s", "-Wall", "-o", str(target), str(src)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mininet_scenarios.guest_image",
                                description="Build the QEMU guest image (idempotent).")
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                   help=f"where to build it (default {DEFAULT_DIR})")
    args = p.parse_args(argv)
    try:
        img = image(args.dir)
        if img is not None:
            print(f"guest image up to date in {args.dir}: kernel {img.kernel_version}")
            return 0
        build(args.dir, log=print)
    except ImageError as exc:
        print(f"guest image: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
