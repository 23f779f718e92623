"""What the topology database's TLS gate lets through, by the identity in
a client's certificate: a reader's requests only if they change nothing."""

import json

import pytest

from nsgre_core.identity import Identity
from nsgre_tools.database_gate import admission, denied, listen_address, refusal

READER, WRITER = Identity("reader", "observer"), Identity("writer", "ops")
CONTROLLER, HOST = Identity("controller", "c1"), Identity("host", "kvm1")


def transact(*ops):
    return {"method": "transact", "params": ["nsgre", *ops], "id": 7}


@pytest.mark.parametrize("message", [
    {"method": "monitor_cond", "params": ["nsgre", "x", {}], "id": 1},
    {"method": "get_schema", "params": ["nsgre"], "id": 2},
    {"method": "echo", "params": [], "id": "echo"},
    {"id": "echo", "result": [], "error": None},                 # an answer to the gate's echo
    transact({"op": "select", "table": "Host", "where": []}),
    transact({"op": "wait", "table": "Fabric", "where": [], "columns": ["version"],
              "until": "==", "rows": []}, {"op": "comment", "comment": "x"}),
])
def test_a_reader_may_read_and_monitor(message):
    assert refusal(READER, message) is None


@pytest.mark.parametrize("message", [
    transact({"op": "select", "table": "Host", "where": []},
             {"op": "insert", "table": "Host", "row": {}}),
    transact({"op": "delete", "table": "Host", "where": []}),
    transact({"op": "mutate", "table": "Fabric", "where": [], "mutations": []}),
    transact("not an op"),
    transact(),
    {"method": "lock", "params": ["nsgre_shard_0"], "id": 3},
    {"method": "steal", "params": ["nsgre_shard_0"], "id": 4},
    {"method": "convert", "params": ["nsgre", {}], "id": 5},
    {"method": "transact", "params": "nsgre", "id": 6},
])
def test_a_reader_may_not_change_anything_nor_take_a_lock(message):
    why = refusal(READER, message)
    assert why is not None and why.startswith("reader observer may only read")


@pytest.mark.parametrize("who", [WRITER, CONTROLLER])
def test_writers_and_controllers_pass_whatever_they_ask(who):
    assert refusal(who, transact({"op": "delete", "table": "Host", "where": []})) is None
    assert refusal(who, {"method": "lock", "params": ["nsgre_shard_0"], "id": 3}) is None


def test_hosts_and_certificates_naming_no_one_are_turned_away_whole():
    assert "has no business with the topology database" in admission(HOST)
    assert admission(None) == "its certificate names no nsgre identity"
    assert admission(READER) is None and admission(WRITER) is None


def test_a_refused_request_is_answered_as_an_ovsdb_error_with_its_id():
    answer = json.loads(denied({"id": 7}, "why"))
    assert answer == {"id": 7, "result": None,
                      "error": {"error": "permission denied", "details": "why"}}


def test_the_gate_listens_on_pssl_remotes_only():
    assert listen_address("pssl:6640:198.18.254.1") == ("198.18.254.1", 6640)
    assert listen_address("pssl:6640") == ("0.0.0.0", 6640)
    with pytest.raises(ValueError, match="pssl:PORT"):
        listen_address("ptcp:6640:198.18.254.1")


def test_members_of_a_cluster_on_one_machine_serve_a_remote_on_ports_counting_up():
    from nsgre_tools.database import member_remote
    assert [member_remote("pssl:16640:198.18.254.1", k) for k in range(3)] == [
        "pssl:16640:198.18.254.1", "pssl:16641:198.18.254.1", "pssl:16642:198.18.254.1"]
    assert member_remote("ptcp:6640", 2) == "ptcp:6642"
    assert member_remote("punix:controllers.sock", 2) == "punix:controllers.sock"
