"""What a link to the console can and cannot do to whoever opens it: swap their session for
someone else's (only dev mode's own printed link signs in), or put its own words on
keyward's page (a sign-in error shows only a known code's meaning)."""

from conftest import expect, mint_jwt

ATTACKER = mint_jwt(sub="mallory@example.com")
PLANTED = "Your session expired: call +1 555 0100 and read out your token"


def test_a_token_in_the_link_signs_nobody_in_off_dev_mode(keyward, console):
    c = console(keyward)
    page = c.open(f"/#token={ATTACKER}")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0
    assert "#token" not in page.url, "the planted token leaves the address bar"
    expect(page.locator("#who")).to_be_empty()


def test_a_token_in_the_link_never_replaces_a_signed_in_session(keyward, console):
    c = console(keyward)
    page = c.sign_in(mint_jwt(sub="alice@example.com"))
    expect(c.row("ci-deploy")).to_be_visible()
    # The same tab follows a link that only changes the hash.
    page.evaluate(f"() => {{ location.hash = 'token={ATTACKER}'; }}")
    page.wait_for_function("() => !location.hash.startsWith('#token=')")
    expect(page.locator("#who")).to_have_text("Signed in as alice@example.com")
    page.reload()
    expect(page.locator("#who")).to_have_text("Signed in as alice@example.com")


def test_a_sign_in_error_in_the_link_shows_only_the_codes_own_words(keyward, console):
    c = console(keyward)
    page = c.open(f"/?error=access_denied&error_description={PLANTED}")
    notice = page.locator("#notice")
    expect(notice).to_contain_text("the sign-in was cancelled or refused")
    assert "555" not in notice.inner_text()
    assert "error" not in page.url

    page = c.open(f"/?error={PLANTED}&error_description={PLANTED}")
    expect(notice).to_contain_text("Sign-in failed")
    assert "555" not in notice.inner_text()
    assert "555" not in page.content()
