"""Command-line options of the nsgre app.

osken-manager parses its command line before it imports any app, so an
app's own options must be registered earlier: pass this file with
``--user-flags`` (os-ken's mechanism for exactly this), or set the same
option in an oslo.config file (``[DEFAULT] nsgre_topology = FILE``).
"""

from oslo_config.cfg import ArgsAlreadyParsedError

from os_ken import cfg

from nsgre_core import paths

TOPOLOGY = cfg.StrOpt("nsgre-topology", default=None,
                      help="topology YAML file (default: the embedded seed topology)")
AUDIT = cfg.FloatOpt("nsgre-audit-interval", default=5.0,
                     help="seconds between re-reading every switch's flows and groups "
                          "to repair changes made behind nsgre's back (0: never)")
API = cfg.StrOpt("nsgre-api", default=paths.api_socket(),
                 help="where the HTTP API listens: a Unix socket path, or HOST:PORT "
                      "('' turns it off)")
OVSDB = cfg.StrOpt("nsgre-ovsdb", default="",
                   help="each host's OVSDB remote, a template with {host} and "
                        "{underlay_ip} (e.g. tcp:{underlay_ip}:6640); when set, the "
                        "controller keeps every host's tunnel ports in step with the "
                        "topology over OVSDB")
DB = cfg.StrOpt("nsgre-db", default="",
                help="nsgre's topology database (OVSDB remotes, comma-separated): the "
                     "topology comes from there instead of a file, and every version "
                     "written there (nsgre apply --db, nsgre endpoint add --db) is applied "
                     "as it lands")
PREFER = cfg.StrOpt("nsgre-prefer", default="",
                    help="with --nsgre-db: the shards this controller asks for at once, "
                         "comma-separated (default: all); it asks for the others only "
                         "after a grace delay, as their backup")
DB_PROBE = cfg.FloatOpt("nsgre-db-probe", default=1.0,
                        help="with --nsgre-db: seconds of silence after which a member of "
                             "the database is sent an echo, and given up after as long "
                             "again (the lock sessions): what a frozen leader "
                             "costs, against what a busy controller tolerates")
TLS = cfg.StrOpt("nsgre-tls", default="",
                 help="a controller's credentials (a directory nsgre pki controller wrote: "
                      "key.pem, cert.pem, ca.pem, crl.pem): OpenFlow is then served with "
                      "TLS on --ofp-listen-host:--ofp-tcp-listen-port, and a switch may only "
                      "be the host its certificate names")
OPTIONS = (TOPOLOGY, AUDIT, API, OVSDB, DB, PREFER, DB_PROBE, TLS)


def register(conf):
    """Register on ``conf`` however it is parsed: as a CLI option before
    parsing, as a config-file option after."""
    for opt in OPTIONS:
        if opt.dest in conf:
            continue
        try:
            conf.register_cli_opt(opt)
        except ArgsAlreadyParsedError:
            conf.register_opt(opt)


register(cfg.CONF)
