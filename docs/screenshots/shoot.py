"""Screenshots of one checkout of the app: python shoot.py REPO TAG PORT [LANG]"""
import os, subprocess, sys, time, urllib.request
from pathlib import Path

repo, tag, port = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
lang = sys.argv[4] if len(sys.argv) > 4 else "pl"
out = Path(os.environ.get("SHOTS_DIR", "/tmp/shots/compare"))
db = out / f"{tag}.sqlite"
db.unlink(missing_ok=True)
env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "BASE_URL": f"http://127.0.0.1:{port}",
       "MAILER_PASSWORD": "Zazolc-gesla-jazn-2026", "OUTBOX_DIR": str(out / f"outbox-{tag}")}
flask = [str(repo / ".venv/bin/flask"), "--app", "mailer"]
run = lambda *a: subprocess.run([*flask, *a], cwd=repo, env=env, check=True, capture_output=True, text=True)
run("db", "upgrade"); run("demo")
run("users", "create", "zdjecia@example.org", "--role", "admin")
seed = r'''
from mailer import create_app, subscriptions, campaigns
from mailer.extensions import db
from mailer.models import MailingList, Subscription, SubscriptionStatus, Event
app = create_app()
with app.app_context():
    s = db.session
    lists = s.query(MailingList).all()
    people = [("lukasz.zolkiewski@example.pl", "Łukasz Żółkiewski"), ("malgorzata@example.pl", "Małgorzata Wiśniewska"),
              ("jan.kowalski@example.pl", "Jan Kowalski"), ("anna@example.org", "Anna Nowak"), ("zofia@example.pl", "Zofia Wójcik")]
    for email, name in people:
        subscriptions.subscribe(s, email=email, name=name, list_ids=[l.id for l in lists if l.public], consent=True, source="form")
    s.commit()
    for sub in s.query(Subscription).all():
        sub.status = SubscriptionStatus.CONFIRMED
    s.commit()
    event = s.query(Event).first()
    c = campaigns.create_campaign(s, event_ids=[event.id], list_ids=[l.id for l in lists])
    s.commit()
    print(c.id)
'''
campaign_id = subprocess.run([str(repo / ".venv/bin/python"), "-c", seed], cwd=repo, env=env, check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
server = subprocess.Popen([*flask, "run", "--port", str(port)], cwd=repo, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/"); break
        except Exception:
            time.sleep(0.2)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        for size, viewport in (("desktop", {"width": 1366, "height": 900}), ("phone", {"width": 390, "height": 844})):
            page = browser.new_page(viewport=viewport)
            base = f"http://127.0.0.1:{port}"
            page.goto(f"{base}/admin/login?lang={lang}")
            page.fill("#email", "zdjecia@example.org"); page.fill("#password", "Zazolc-gesla-jazn-2026")
            page.click("button[type=submit]"); page.wait_for_load_state()
            for name, path in (("dashboard", "/admin/"), ("search", "/admin/subscribers?q=%C5%81UKASZ"),
                               ("campaign", f"/admin/campaigns/{campaign_id}"),
                               ("lists", "/admin/lists"), ("home", "/"), ("manage", "/manage")):
                page.goto(base + path); page.wait_for_load_state("networkidle")
                page.screenshot(path=str(out / f"{tag}-{size}-{name}.png"), full_page=True)
                width = page.evaluate("document.documentElement.scrollWidth")
                print(tag, size, name, "scrollWidth", width)
            page.close()
        browser.close()
finally:
    server.terminate()
