"""OAR requests: the builder's strings always parse with the OAR 2.5 grammar port, and the
two strings execo 2.8.2's ``get_jobs_specs`` builds are rejected / recognised as wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy.g5k.oarspec import (
    KAVLAN_TYPES,
    OAR_GRAMMAR_EXIT,
    NodesGroup,
    OarGrammarError,
    OarRequest,
    OarRequestError,
    ResourceGroup,
    build_resources,
    check_resources,
    empty_constraints,
    format_walltime,
    parse_resources,
    parse_walltime,
)
from tests.g5k_recorded import recorded_platform

# -- the grammar port on known strings --------------------------------------------------


def test_oar_documentation_examples_parse() -> None:
    r = parse_resources("host=4/cpu=1,walltime=2:00:00")
    assert r.groups == (ResourceGroup(None, (("host", 4), ("cpu", 1))),)
    assert r.walltime_s == 7200
    r = parse_resources("{cluster='a'}/nodes=2+{cluster='b'}/nodes=ALL,walltime=1")
    assert r.groups == (ResourceGroup("cluster='a'", (("nodes", 2),)),
                        ResourceGroup("cluster='b'", (("nodes", -1),)))
    assert r.walltime_s == 3600
    assert parse_resources("nodes=BEST").groups[0].resources == (("nodes", -2),)
    assert parse_resources("nodes=BESTHALF").groups[0].resources == (("nodes", -3),)
    assert parse_resources("nodes=1,walltime=0:90").walltime_s == 90 * 60  # OAR: H:M


def test_host_lists_with_commas_parse_in_oar_2_5() -> None:
    r = parse_resources("{host IN ('a.s.grid5000.fr', 'b.s.grid5000.fr')}/nodes=2")
    assert r.groups[0].property == "host IN ('a.s.grid5000.fr', 'b.s.grid5000.fr')"


def test_walltime_alone_falls_back_on_the_default_resources() -> None:
    r = parse_resources("walltime=2:00:00")
    assert r.groups == (ResourceGroup(None, (("resource_id", 1),)),)
    assert r.walltime_s == 7200


@pytest.mark.parametrize(("text", "message"), [
    ("nodes=two", "# Error: cannot recognize the resource description: nodes=two"),
    ("nodes=2//cpu=1", "# Error: cannot recognize the resource description: "),
    ("nodes=2,walltime=1:0:0,x", "# Error: cannot recognize -- ,walltime=1:0:0,x -- resource"),
    ("", "# Error: cannot recognize --  -- resource"),
])
def test_grammar_errors_carry_oars_message(text: str, message: str) -> None:
    with pytest.raises(OarGrammarError) as err:
        parse_resources(text)
    assert err.value.message == message
    assert OAR_GRAMMAR_EXIT == 18


# -- execo 2.8.2's own strings -----------------------------------------------------------


@pytest.fixture(scope="module")
def execo_specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``get_jobs_specs`` for 2 + 2 nodes, global KaVLAN, fclc blacklisted (as Funk asks)."""
    from execo_g5k.planning import get_jobs_specs

    with recorded_platform(tmp_path_factory.mktemp("api")):
        specs = get_jobs_specs({"fsite1": 2, "fsite2": 2, "kavlan": ["fsite1", "fsite2"]},
                               excluded_elements=["fclc"], name="funk")
    return {site: spec.resources for spec, site in specs}


def test_execo_kavlan_string_is_rejected_with_oars_message(execo_specs: dict[str, str]) -> None:
    assert execo_specs["fsite1"] == "nodes=2+{type='kavlan-global'}/vlan=1+"
    with pytest.raises(OarGrammarError) as err:
        parse_resources(execo_specs["fsite1"] + ",walltime=1:0:0")
    assert err.value.message == "# Error: cannot recognize -- +,walltime=1:0:0 -- resource"


def test_execo_blacklist_string_is_recognised_as_ignored(execo_specs: dict[str, str]) -> None:
    text = execo_specs["fsite2"] + ",walltime=1:0:0"
    assert text == "{cluster NOT IN ('fclc')}/+nodes=2,walltime=1:0:0"
    parsed = parse_resources(text)  # OAR accepts it ...
    assert parsed.groups == (ResourceGroup("cluster NOT IN ('fclc')", ()),
                             ResourceGroup(None, (("nodes", 2),)))  # ... nodes unconstrained
    assert empty_constraints(parsed) == [
        "constraint {cluster NOT IN ('fclc')} is attached to an empty resource group: "
        "OAR ignores it"]
    with pytest.raises(OarRequestError, match="empty resource group"):
        check_resources(text)
    with pytest.raises(OarRequestError):
        OarRequest("fsite2", execo_specs["fsite2"], "1:00:00")


def test_our_strings_for_the_same_request() -> None:
    fsite1 = build_resources([NodesGroup(2, "fsite1")], kavlan="kavlan-global")
    fsite2 = build_resources([NodesGroup(2, "fsite2", blacklist=("fclc",))])
    assert fsite1 == "{type='kavlan-global'}/vlan=1+nodes=2"
    assert fsite2 == "{cluster NOT IN ('fclc')}/nodes=2"
    assert check_resources(fsite2 + ",walltime=1:00:00").groups == (
        ResourceGroup("cluster NOT IN ('fclc')", (("nodes", 2),)),)


# -- the property: whatever we build, OAR reads it as we meant ----------------------------

_name = st.text("abcdefgh", min_size=2, max_size=6)
_host = st.builds(lambda c, i, s: f"{c}-{i}.{s}.grid5000.fr", _name, st.integers(1, 99), _name)


@st.composite
def _group(draw: st.DrawFn) -> NodesGroup:
    site = draw(_name)
    blacklist = tuple(draw(st.lists(st.one_of(_name, _host), max_size=3)))
    if draw(st.booleans()):
        hosts = tuple(draw(st.lists(_host, min_size=1, max_size=4, unique=True)))
        return NodesGroup(None, site, hosts=hosts, blacklist=blacklist)
    cluster = draw(st.one_of(st.none(), _name))
    return NodesGroup(draw(st.integers(1, 2000)), site, cluster=cluster, blacklist=blacklist)


@settings(max_examples=150, deadline=None)
@given(
    groups=st.lists(_group(), min_size=1, max_size=4),
    kavlan=st.one_of(st.none(), st.sampled_from(KAVLAN_TYPES)),
    subnets=st.one_of(st.none(), st.builds(lambda p, n: f"slash_{p}={n}",
                                           st.integers(16, 22), st.integers(1, 8))),
    walltime=st.integers(1, 200 * 3600),
)
def test_built_requests_always_parse_as_meant(
    groups: list[NodesGroup], kavlan: str | None, subnets: str | None, walltime: int
) -> None:
    resources = build_resources(groups, kavlan=kavlan, subnets=subnets)
    assert "," not in resources  # OAR 3 splits requests on ','
    parsed = check_resources(f"{resources},walltime={format_walltime(walltime)}")
    assert parsed.walltime_s == walltime
    expected = [ResourceGroup(None, ((subnets.split("=")[0], int(subnets.split("=")[1])),))
                ] if subnets else []
    if kavlan:
        expected.append(ResourceGroup(f"type='{kavlan}'", (("vlan", 1),)))
    expected += [ResourceGroup(g.constraint(), (("nodes", g.nodes),)) for g in groups]
    assert list(parsed.groups) == expected
    for g, got in zip(groups, parsed.groups[len(expected) - len(groups):], strict=True):
        for name in g.blacklist:  # every blacklisted name is inside its own nodes group
            assert f"NOT IN ('{name}')" in (got.property or "")


# -- walltimes and command lines ---------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("12:00", 12 * 3600), ("12:00:00", 12 * 3600), ("25:00:00", 25 * 3600), ("2", 7200),
    ("0:30:00", 1800), ("1:0:5", 3605),
])
def test_walltimes_read_as_oar_reads_them(text: str, seconds: int) -> None:
    assert parse_walltime(text) == seconds
    assert parse_resources(f"nodes=1,walltime={text}").walltime_s == seconds


@pytest.mark.parametrize("text", ["25:61", "1:00:60", "0:00", "1h", "", "1::2", "-1:00"])
def test_bad_walltimes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_walltime(text)


def test_format_walltime() -> None:
    assert format_walltime(3600) == "1:00:00"
    assert format_walltime(25 * 3600 + 61) == "25:01:01"


def test_oarsub_line_and_execos_submission(tmp_path: Path) -> None:
    from execo_g5k.oar import get_oarsub_commandline

    req = OarRequest("fsite2", "{cluster NOT IN ('fclc')}/nodes=2", "12:00:00",
                     job_types=("deploy",), name="exp", reservation="2026-12-07 19:00:00")
    assert req.oarsub_args() == [
        "oarsub", "-l", "{cluster NOT IN ('fclc')}/nodes=2,walltime=12:00:00", "-t", "deploy",
        "-r", "2026-12-07 19:00:00", "-n", "exp", "sleep 31536000"]
    assert req.line() == ('oarsub -l "{cluster NOT IN (\'fclc\')}/nodes=2,walltime=12:00:00" '
                          '-t deploy -r "2026-12-07 19:00:00" -n exp "sleep 31536000"')
    execo_line = get_oarsub_commandline(req.submission())
    assert '-l "{cluster NOT IN (\'fclc\')}/nodes=2,walltime=12:0:0"' in execo_line
    assert '-r "2026-12-07 19:00:00"' in execo_line and '-n "exp"' in execo_line


def test_groups_refuse_impossible_counts() -> None:
    with pytest.raises(ValueError):
        NodesGroup(0, "s")
    with pytest.raises(ValueError):
        NodesGroup(3, "s", hosts=("a.s.grid5000.fr",))
    with pytest.raises(ValueError):
        build_resources([])
