"""Public pages: upcoming events with the subscribe box, the JSON subscribe endpoint for
embeds, confirmation and unsubscribe links."""

from functools import wraps
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, make_response, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from .. import campaigns, events, lists, subscriptions, tokens
from ..errors import ExpiredToken, InvalidInput
from ..extensions import csrf, db_session, limiter
from . import subscribe_limits
from .errors import error_body, error_text
from .forms import HONEYPOT, ButtonForm, SubscribeForm, UnsubscribeForm
from .i18n import in_subscriber_language
from .security import csp_nonce

bp = Blueprint("public", __name__)


@limiter.request_filter
def _not_flask_limiters() -> bool:
    """The public pages carry none of Flask-Limiter's limits (theirs are ``subscribe_limits``,
    counted in one round trip), so its resolution of the limits of each request, which finds
    none here, is skipped: 7 % of a sign-up's web CPU. ``tests/test_security_subscribe.py``
    checks that no public view is decorated with one of its limits."""
    return request.blueprint == bp.name


ONE_CLICK = "One-Click"


# --- Rate limits (per IP across every subscribe route, and per normalized address) ------

def _posted() -> dict:
    if request.is_json:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}
    return request.form


def _json_breach():
    response = jsonify(error=_("Too many attempts. Please wait a moment and try again."))
    response.status_code = 429
    return _cors(response)


def _ip_limit(json: bool = False):
    return subscribe_limits.per_ip(on_breach=_json_breach if json else None)


def _ip_and_address_limits(json: bool = False):
    """Both budgets of a sign-up, counted in one round trip (the IP's first)."""
    return subscribe_limits.limited(subscribe_limits.ip_budget(),
                                    subscribe_limits.address_budget(lambda: _posted().get("email")),
                                    on_breach=_json_breach if json else None)


def current_locale_name() -> str:
    return str(get_locale())


def chosen_locale(value) -> str:
    """The language a visitor chose for their newsletter (the form's field), else the page's."""
    return value if isinstance(value, str) and value in current_app.config["LANGUAGES"] else current_locale_name()


def _origin(source: str) -> dict:
    """The request's origin for the consent record: ``remote_addr`` is what ProxyFix
    (PROXY_FIX_HOPS) made of the forwarding headers; X-Forwarded-For is never read here."""
    return {"source": source, "ip": request.remote_addr or "",
            "user_agent": request.user_agent.string or ""}


# --- Index and the subscribe form --------------------------------------------------------

def _index(form: SubscribeForm, error: InvalidInput | None = None, status: int = 200):
    offered = lists.public_lists(db_session)
    upcoming = events.upcoming(db_session, limit=12)
    locale = current_locale_name()
    when = {event.id: events.when(event, locale) for event in upcoming}
    return render_template("web/public/index.html", form=form, lists=offered, events=upcoming,
                           when=when, error=error, archive=campaigns.archive_has_entries(db_session)), status


def _check_inbox():
    """One neutral answer whatever the address's state (and for a filled honeypot)."""
    return render_template("web/public/check_inbox.html")


@bp.get("/")
def index():
    return _index(SubscribeForm())


@bp.get("/subscribe")
def subscribe_page():
    """The form lives on the home page. Only the language is carried over: other arguments
    would reach ``url_for`` (``_external``, ``_scheme``, ``_anchor`` ... would build the URL)."""
    lang = request.args.get("lang")
    target = url_for("public.index", lang=lang) if lang in current_app.config["LANGUAGES"] else url_for("public.index")
    return redirect(target + "#newsletter")


@bp.post("/subscribe")
@_ip_and_address_limits()
@subscribe_limits.equal_time
def subscribe():
    form = SubscribeForm()
    if request.form.get(HONEYPOT):
        return _check_inbox()
    chosen = request.form.getlist("lists") if request.form.get("choose_lists") else None
    try:
        subscriptions.subscribe(
            db_session, email=request.form.get("email", ""), name=request.form.get("name", ""),
            list_ids=chosen, locale=chosen_locale(request.form.get("locale")),
            consent=request.form.get("consent") in {"y", "on", "1", "true"}, **_origin("form"))
    except InvalidInput as exc:
        return _index(form, exc, 400)
    return _check_inbox()


# --- JSON endpoint for CMS pages and embeds ----------------------------------------------

def _allowed_origin() -> str | None:
    """The request's Origin when it is a site allowed to embed the form (EMBED_ORIGINS) or this
    site itself, else None."""
    origin = (request.headers.get("Origin") or "").rstrip("/")
    own = urlsplit(current_app.config["BASE_URL"])
    if origin and (origin in current_app.config["EMBED_ORIGINS"] or origin == f"{own.scheme}://{own.netloc}"):
        return origin
    return None


# What the embed snippet sends: fetch() with FormData, or the form itself without scripts.
EMBED_TYPES = {"multipart/form-data", "application/x-www-form-urlencoded", "application/json"}


def _cors(response):
    origin = _allowed_origin()
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
    response.vary.add("Origin")
    return response


def _text(data, name: str) -> str:
    value = data.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput("This value must be text.", name)
    return value


def _consent(value) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in {"1", "on", "y", "yes", "true"})


def _embed_only(view):
    """A page of another site may post a form anywhere (only reading the answer is blocked by
    CORS): a sign-up from an origin that is not allowed, or from no origin at all, is refused
    before anything is read or counted, so other sites cannot bomb a mailbox through their
    visitors' browsers, nor use up its sign-up budget."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if _allowed_origin() is None:
            return _cors(make_response(jsonify(error=_("Sign-ups from this site are not allowed.")), 403))
        if request.method == "POST" and request.mimetype not in EMBED_TYPES:
            return _cors(make_response(jsonify(error=_("The request could not be understood.")), 415))
        return view(*args, **kwargs)

    return wrapped


@bp.route("/subscribe.json", methods=["POST", "OPTIONS"])
@csrf.exempt  # no cookies are used: only allowed origins; the same defences as the form otherwise
@_embed_only
@_ip_and_address_limits(json=True)
@subscribe_limits.equal_time
def subscribe_json():
    if request.method == "OPTIONS":
        return _cors(make_response("", 204))
    data = _posted()
    if request.is_json and not data:
        return _cors(make_response(jsonify(error=_("The request could not be understood.")), 400))
    if data.get(HONEYPOT):
        return _cors(jsonify(ok=True, message=_("Check your inbox")))
    try:
        raw_lists = data.getlist("lists") if hasattr(data, "getlist") else data.get("lists")
        if raw_lists is not None and not isinstance(raw_lists, list):
            raw_lists = [raw_lists]
        subscriptions.subscribe(
            db_session, email=_text(data, "email"), name=_text(data, "name"),
            list_ids=raw_lists or None, locale=chosen_locale(_text(data, "locale")),
            consent=_consent(data.get("consent")), **_origin("embed"))
    except InvalidInput as exc:
        return _cors(make_response(jsonify(error_body(error_text(exc), exc.field)), 400))
    return _cors(jsonify(ok=True, message=_("Check your inbox")))


@bp.get("/embed")
def embed():
    values = {"lists": lists.public_lists(db_session),
              "endpoint": current_app.config["BASE_URL"] + url_for("public.subscribe_json")}
    # The copy to paste, and the live form shown below it (its script carries this page's CSP nonce).
    snippet = render_template("web/public/embed_snippet.html", **values)
    live = render_template("web/public/embed_snippet.html", nonce=csp_nonce(), **values)
    return render_template("web/public/embed.html", snippet=snippet, live=live)


# --- Confirmation ------------------------------------------------------------------------

def _expired(token: str):
    return render_template("web/public/confirm_expired.html", form=ButtonForm(), token=token), 410


@bp.get("/confirm/<token>")
@in_subscriber_language(tokens.CONFIRM)
def confirm_page(token: str):
    """Shows a button and changes nothing (mail scanners fetch links)."""
    try:
        _subscriber, already = subscriptions.check_confirmation(db_session, token)
    except ExpiredToken:
        return _expired(token)
    if already:
        return render_template("web/public/confirmed.html", already=True)
    return render_template("web/public/confirm.html", form=ButtonForm(), token=token)


@bp.post("/confirm/<token>")
@in_subscriber_language(tokens.CONFIRM)
def confirm(token: str):
    try:
        _subscriber, already = subscriptions.confirm(
            db_session, token, ip=request.remote_addr or "", user_agent=request.user_agent.string or "")
    except ExpiredToken:
        return _expired(token)
    return render_template("web/public/confirmed.html", already=already)


@bp.post("/confirm/<token>/resend")
@in_subscriber_language(tokens.CONFIRM)
@_ip_limit()
@subscribe_limits.equal_time
def resend_confirmation(token: str):
    subscriptions.resend_confirmation(db_session, token)
    return _check_inbox()


# --- Unsubscribe -------------------------------------------------------------------------

@bp.route("/u/<token>", methods=["GET", "POST"])
@csrf.exempt  # RFC 8058 one-click comes without cookies or token; other POSTs are checked below
@in_subscriber_language(tokens.UNSUBSCRIBE)
def unsubscribe(token: str):
    if request.method == "GET":
        subscriber, subs, about = subscriptions.unsubscribe_view(db_session, token)
        active = [item for item in subs if item.status != subscriptions.UNSUBSCRIBED]
        return render_template("web/public/unsubscribe.html", form=UnsubscribeForm(),
                               subscriber=subscriber, active=active, about=about, token=token)
    if request.form.get("List-Unsubscribe") == ONE_CLICK:
        subscriptions.leave(db_session, token, **_origin("one-click"))
        return make_response(_("You have been unsubscribed."), 200, {"Content-Type": "text/plain; charset=utf-8"})
    csrf.protect()
    chosen = request.form.getlist("lists") if request.form.get("choose_lists") else None
    subscriptions.leave(db_session, token, list_ids=chosen, **_origin("form"))
    return render_template("web/public/unsubscribed.html")
