"""The TOML configuration and the server certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from rdscard.config import Config, ListenAddress, load_config, parse_config
from rdscard.errors import ConfigError
from rdscard.server.tls import ensure_server_certificate, server_ssl_context


def test_defaults_and_overrides() -> None:
    config = Config().with_overrides(listen="127.0.0.1:0", state_dir="/srv/state")
    assert config.server.listen == ListenAddress("127.0.0.1", 0)
    assert config.server.state_dir == Path("/srv/state")
    assert Config().server.listen.port == 3389


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [("0.0.0.0:3389", "0.0.0.0", 3389), ("[::1]:4000", "::1", 4000), ("example", "example", 3389),
     (":3390", "0.0.0.0", 3390)],
)
def test_listen_address_forms(text: str, host: str, port: int) -> None:
    assert ListenAddress.parse(text) == ListenAddress(host, port)


@pytest.mark.parametrize("text", ["host:port", "host:70000", "[::1", "[::1]x"])
def test_bad_listen_address_names_the_problem(text: str) -> None:
    with pytest.raises(ConfigError, match="listen address"):
        ListenAddress.parse(text)


def test_example_file_parses_to_the_defaults() -> None:
    example = Path(__file__).parents[2] / "rdscard.example.toml"
    assert load_config(example) == Config()


def test_unknown_setting_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting.*listne"):
        parse_config('[server]\nlistne = "1.2.3.4:1"\n')


def test_wrong_type_and_half_a_certificate_are_errors() -> None:
    with pytest.raises(ConfigError, match="max_connections"):
        parse_config("[server]\nmax_connections = 'many'\n")
    with pytest.raises(ConfigError, match="go together"):
        parse_config('[server]\ncertificate = "/etc/cert.pem"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[server\n")


def test_generated_certificate_is_reused_and_private(tmp_path: Path) -> None:
    first = ensure_server_certificate(tmp_path, None, None, "rdsh.test")
    second = ensure_server_certificate(tmp_path, None, None, "rdsh.test")
    assert first.generated and not second.generated
    assert first.fingerprint_sha256 == second.fingerprint_sha256
    assert len(first.fingerprint_sha256.split(":")) == 32
    assert first.key_path.stat().st_mode & 0o777 == 0o600
    context = server_ssl_context(first)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_unreadable_configured_certificate_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.certificate"):
        ensure_server_certificate(tmp_path, tmp_path / "missing.pem", tmp_path / "k.pem")


def test_limits_settings_and_their_errors() -> None:
    server = Config().server
    assert (server.max_connections_per_address, server.connection_rate) == (20, 30)
    assert (server.logon_timeout, server.output_pause, server.output_limit) == (
        120.0, 1 << 20, 16 << 20)
    parsed = parse_config("[server]\nmax_connections_per_address = 0\nconnection_rate = 5\n"
                          "logon_timeout = 0\noutput_pause = 262144\noutput_limit = 524288\n")
    assert parsed.server.max_connections_per_address == 0
    assert parsed.server.connection_rate == 5 and parsed.server.logon_timeout == 0
    assert (parsed.server.output_pause, parsed.server.output_limit) == (262144, 524288)
    with pytest.raises(ConfigError, match="connection_rate must be 0"):
        parse_config("[server]\nconnection_rate = -1\n")
    with pytest.raises(ConfigError, match="output_pause = 1000: choose at least"):
        parse_config("[server]\noutput_pause = 1000\n")
    with pytest.raises(ConfigError, match=r"output_limit .* must be larger than"):
        parse_config("[server]\noutput_pause = 4194304\noutput_limit = 4194304\n")
    with pytest.raises(ConfigError, match="logon_timeout"):
        parse_config("[server]\nlogon_timeout = 'soon'\n")


def test_redirection_limits() -> None:
    config = parse_config("[redirection]\nmax_contexts = 8\nmax_program_connections = 20\n")
    assert (config.redirection.max_contexts, config.redirection.max_program_connections) == (8, 20)
    assert Config().redirection.max_contexts == 32  # well under the client pcscd's 200
    assert (Config().redirection.context_pool, Config().redirection.quick_disconnect) == (4, True)
    config = parse_config("[redirection]\ncontext_pool = 0\nquick_disconnect = false\n")
    assert (config.redirection.context_pool, config.redirection.quick_disconnect) == (0, False)


@pytest.mark.parametrize(
    ("text", "message"),
    [("max_contexts = 0", r"max_contexts = 0: choose 1 to 150"),
     ("max_contexts = 200", r"max_contexts = 200: choose 1 to 150 .*client's pcscd"),
     ("max_contexts = true", r"max_contexts: expected int"),
     ("max_program_connections = 0", r"max_program_connections = 0: choose 1 to 1000"),
     ("max_program_connections = '9'", r"max_program_connections: expected int"),
     ("context_pool = 17", r"context_pool = 17: choose 0 to 16"),
     ("quick_disconnect = 1", r"quick_disconnect: expected bool")],
)
def test_bad_redirection_limits_say_what_to_choose(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(f"[redirection]\n{text}\n", "rdscard.toml")
