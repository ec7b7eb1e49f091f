"""Generated NATS passwords can be passed as ``--password P`` on a command line."""

from streamguard.stack import _new_password


def test_generated_passwords_never_look_like_options() -> None:
    # token_urlsafe starts with "-" one time in 64: 2,000 draws would all but surely meet one.
    passwords = [_new_password() for _ in range(2_000)]
    assert not any(p.startswith("-") for p in passwords)
    assert len(set(passwords)) == len(passwords)
    assert all(len(p) == 43 for p in passwords)
