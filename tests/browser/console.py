#!/usr/bin/env python3
"""Browser test of the web console: headless Chromium (Debian's package,
/usr/bin/chromium) driven by Playwright for Python. Run by
tests/operator_http.rs, which writes the scenario through gRPC first and
checks what this script reports (one JSON object on stdout) against gRPC
and the offline `statement --format csv`.

Argument: a JSON object with console (base URL), token, account, search,
now, csv_path, docs_dir.
"""
import json
import os
import sys

from playwright.sync_api import sync_playwright

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main():
    args = json.loads(sys.argv[1])
    base = args["console"].rstrip("/")
    account = args["account"]
    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
            headless=True,
            args=FLAGS,
        )
        ctx = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900})
        page = ctx.new_page()
        page.set_default_timeout(20000)

        # Without a token: the login page, not data.
        r = page.goto(f"{base}/accounts/{account}")
        out["no_token_status"] = r.status
        out["no_token_login_form"] = page.locator("form.login").count()
        out["no_token_balance"] = page.locator("#balance").count()
        out["no_token_mentions_account"] = account in page.content()

        # Log in through the form; it leads back to the page asked for.
        page.fill("input[name=token]", args["token"])
        page.click("form.login button[type=submit]")
        page.wait_for_url(f"{base}/accounts/{account}")

        # The accounts list: most urgent first; find the account by search.
        page.goto(f"{base}/accounts")
        out["list_rows"] = page.locator("tr[data-account]").count()
        out["list_order"] = page.locator("tr[data-account]").evaluate_all(
            "rows => rows.map(r => r.getAttribute('data-account'))")
        out["list_countdowns"] = page.locator("tr[data-account] .countdown").count()
        page.screenshot(path=os.path.join(args["docs_dir"], "console-accounts.png"), full_page=True)
        page.fill("input[name=q]", args["search"])
        page.click("form.filters button[type=submit]")
        page.wait_for_load_state()
        out["search_rows"] = page.locator("tr[data-account]").evaluate_all(
            "rows => rows.map(r => r.getAttribute('data-account'))")
        page.click(f"tr[data-account='{account}'] a")
        page.wait_for_url(f"{base}/accounts/{account}")

        # The account page: balance and the chart's markers.
        out["balance"] = page.text_content("#balance").strip()
        out["markers"] = {
            kind: page.locator(f"svg.chart .marker[data-kind={kind}]").count()
            for kind in ["TOP_UP", "DEPLETION", "REACTIVATION"]
        }
        out["pbx_sections"] = page.locator("section.pbx").count()
        out["tier_cells"] = page.locator("td.tiers").count()
        page.screenshot(path=os.path.join(args["docs_dir"], "console-account.png"), full_page=True)

        # The statement of (0, now] and its CSV download.
        page.goto(f"{base}/accounts/{account}/statement?from=0&to={args['now']}")
        out["statement_lines"] = page.locator("table.statement tbody tr").count()
        with page.expect_download() as d:
            page.click("#csv")
        d.value.save_as(args["csv_path"])

        # The ledger page shows the head seq.
        page.goto(f"{base}/ledger")
        out["head_seq"] = page.text_content("#head-seq").strip()

        # Logging out brings the login page back.
        page.goto(f"{base}/accounts")
        page.click("form.logout button")
        r = page.goto(f"{base}/accounts")
        out["after_logout_status"] = r.status
        browser.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
