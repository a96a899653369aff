"""Configuration: every flag also as SPHERECORR_*; a flag wins; bad values are refused at start with the name."""
from __future__ import annotations

import subprocess

from helpers import ServerProcess, server_binary


def test_environment_variables_and_flag_precedence():
    s = ServerProcess("--max-points", "7", name="env",
                      env={"SPHERECORR_MAX_BODY_BYTES": "3000000", "SPHERECORR_MAX_POINTS": "99",
                           "SPHERECORR_DRAIN_DELAY": "0.5", "SPHERECORR_QUEUE_SIZE": "3"})
    try:
        s.wait_ready()
        limits = s.request("GET", "/v1/info").json()["limits"]
        assert limits["max_body_bytes"] == 3000000 and limits["drain_delay_s"] == 0.5
        assert limits["inference_queue_size"] == 3
        assert limits["max_points"] == 7  # the flag wins over SPHERECORR_MAX_POINTS
    finally:
        assert s.stop() == 0


def test_bad_configuration_is_refused_with_its_name():
    for args, env, words in ((["--resolution", "50"], {}, "multiples of 14"),
                             ([], {"SPHERECORR_QUEUE_SIZE": "lots"}, "SPHERECORR_QUEUE_SIZE"),
                             (["--bundles", "/nonexistent/bundles"], {}, "/nonexistent/bundles")):
        p = subprocess.run([str(server_binary()), "--port", "0", "--admin-port", "0", *args], env=env,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0 and words in p.stderr, (args, env, p.stderr)


def test_help_documents_the_environment():
    p = subprocess.run([str(server_binary()), "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "SPHERECORR_" in p.stdout and "--bundles" in p.stdout
