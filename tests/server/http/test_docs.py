"""/docs: the OpenAPI description matches the routes the door serves, and
the browsable page works in a real headless Chromium: it loads, lists the
routes, and "Try it out" on GET /health gets 200."""

import json
import pathlib

import pytest

import cdp

REPO = pathlib.Path(__file__).resolve().parents[3]
SWAGGER = REPO / "third_party" / "swagger-ui" / "node_modules" / "swagger-ui-dist"


def description(door):
    r = door.request("GET", "/docs/openapi.json")
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/json"
    return r.json()


def test_the_description_is_openapi_3_and_every_route_in_it_is_served(door):
    doc = description(door)
    assert doc["openapi"].startswith("3.")
    routes = [(m.upper(), p) for p, item in doc["paths"].items() for m in item]
    assert ("POST", "/api/v1/eval") in routes and ("GET", "/metrics") in routes
    for method, path in routes:
        url = path.replace("{id}", "exe_00000000-0000-4000-8000-000000000000")
        r = door.request(method, url, b"{}" if method == "POST" else None)
        # Served: whatever the answer, it is not "no route" nor "method".
        assert r.status != 405, (method, path)
        if r.status == 404:
            assert "no route" not in r.json()["error"], (method, path)


def test_every_served_route_is_described(door):
    """A method the description does not give a path answers 405, so the
    description's methods are all the door's methods."""
    doc = description(door)
    for path, item in doc["paths"].items():
        url = path.replace("{id}", "exe_00000000-0000-4000-8000-000000000000")
        for method in ("GET", "POST", "DELETE", "PUT", "PATCH"):
            if method.lower() in item:
                continue
            r = door.request(method, url)
            assert r.status == 405, (method, path, r.status)
            allowed = {m.strip() for m in r.headers["Allow"].split(",")}
            assert allowed == {m.upper() for m in item}, (path, allowed)


def test_without_swagger_ui_the_page_lists_the_routes(door):
    r = door.request("GET", "/docs")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/html")
    page = r.body.decode()
    for path in description(door)["paths"]:
        assert f" {path}</code>" in page
    assert door.request("GET", "/docs/swagger-ui-bundle.js").status == 404


def test_a_missing_docs_dir_stops_the_server_with_a_clear_error(tmp_path):
    import httpdoor
    with pytest.raises(httpdoor.pyexecd.ServerError) as e:
        httpdoor.Door("--http-docs-dir", str(tmp_path))
    assert "--http-docs-dir" in str(e.value) and "swagger-ui-bundle.js" in str(e.value)


# The page's script: wait (a MutationObserver, not a timer) for what Swagger
# UI renders, list the routes, then Try it out -> Execute on GET /health.
TRY_HEALTH = r"""
(async () => {
  const waitFor = (find, what) => new Promise((resolve, reject) => {
    const found = find();
    if (found) return resolve(found);
    const timer = setTimeout(() => { obs.disconnect(); reject(new Error('no ' + what)); }, 30000);
    const obs = new MutationObserver(() => {
      const f = find();
      if (f) { obs.disconnect(); clearTimeout(timer); resolve(f); }
    });
    obs.observe(document.body, {childList: true, subtree: true, characterData: true,
                                attributes: true});
  });
  await waitFor(() => document.querySelector('.opblock'), 'operations');
  const routes = [...document.querySelectorAll('.opblock-summary')].map(s =>
    s.querySelector('.opblock-summary-method').textContent.trim() + ' ' +
    s.querySelector('.opblock-summary-path').getAttribute('data-path'));
  const block = [...document.querySelectorAll('.opblock')].find(b =>
    b.querySelector('.opblock-summary-path').getAttribute('data-path') === '/health');
  (block.querySelector('.opblock-summary-control') ||
   block.querySelector('.opblock-summary')).click();
  (await waitFor(() => block.querySelector('.try-out__btn'), 'Try it out')).click();
  (await waitFor(() => block.querySelector('.execute'), 'Execute')).click();
  const status = await waitFor(() => {
    const cell = block.querySelector('.live-responses-table tr.response .response-col_status');
    return cell && cell.textContent.trim() ? cell : null;
  }, 'a response');
  const body = block.querySelector('.live-responses-table tr.response .microlight') ||
               block.querySelector('.live-responses-table tr.response pre');
  return {routes, status: status.textContent.trim(), body: body ? body.textContent : ''};
})()
"""


def test_the_page_in_headless_chromium_lists_routes_and_tries_health(door_factory):
    if not cdp.chromium_binary():
        import httpdoor
        httpdoor.pyexecd.missing("chromium is not installed (scripts/setup installs it)")
    assert (SWAGGER / "swagger-ui-bundle.js").exists(), \
        "swagger-ui-dist missing: run scripts/setup"
    door = door_factory("--http-docs-dir", str(SWAGGER))
    browser = cdp.Browser()
    try:
        browser.navigate(f"http://{door.address}/docs")
        got = browser.evaluate(TRY_HEALTH)
    finally:
        browser.close()
    doc = description(door)
    described = {f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item}
    assert set(got["routes"]) == described
    assert got["status"] == "200"
    assert json.loads(got["body"]) == {"status": "ok"}
