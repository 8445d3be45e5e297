// The shell: who is signed in (GET /api/console/session), the navigation bar and the page
// named by the URL's hash (#/models...). A gateway key sees only the playground.

import { useEffect, useState } from "preact/hooks";
import { ApiError, getJson, storedKey, storeKey, type Session } from "./api";
import { Login } from "./pages/login";
import { Models } from "./pages/models";
import { Performance } from "./pages/performance";
import { Playground } from "./pages/playground";
import { Providers } from "./pages/providers";
import { Requests } from "./pages/requests";

export const PAGES = [
  { path: "playground", title: "Playground", admin: false },
  { path: "performance", title: "Performance", admin: true },
  { path: "models", title: "Models", admin: true },
  { path: "providers", title: "Providers & keys", admin: true },
  { path: "requests", title: "Requests", admin: true },
] as const;

function currentPath(): string {
  return location.hash.replace(/^#\/?/, "").split("?")[0] || "playground";
}

export function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [loginError, setLoginError] = useState<string | null>(null);
  const [checking, setChecking] = useState(true);
  const [path, setPath] = useState(currentPath());
  const [menuOpen, setMenuOpen] = useState(false);

  async function check(): Promise<void> {
    setChecking(true);
    try {
      const s = await getJson<Session>("/api/console/session");
      setSession(s.role === "none" ? null : s);
      setLoginError(null);
    } catch (err) {
      setSession(null);
      if (storedKey()) {
        setLoginError(err instanceof ApiError ? err.message : String(err));
        storeKey(null);
      }
    } finally {
      setChecking(false);
    }
  }

  useEffect(() => {
    void check();
    const onHash = () => {
      setPath(currentPath());
      setMenuOpen(false);
    };
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);

  if (checking && !session) return <main class="page"><p>Loading…</p></main>;
  if (!session) {
    return (
      <Login
        error={loginError}
        onKey={(key) => {
          storeKey(key);
          void check();
        }}
      />
    );
  }
  const pages = PAGES.filter((p) => session.role === "admin" || !p.admin);
  const page = pages.find((p) => p.path === path);
  return (
    <>
      <header class="bar">
        <a class="brand" href="#/playground">Turnout</a>
        <button
          class="menu"
          type="button"
          aria-expanded={menuOpen}
          aria-controls="nav"
          onClick={() => setMenuOpen(!menuOpen)}
        >
          Menu
        </button>
        <nav id="nav" class={menuOpen ? "open" : ""} aria-label="Pages">
          {pages.map((p) => (
            <a href={`#/${p.path}`} aria-current={p.path === path ? "page" : undefined}>
              {p.title}
            </a>
          ))}
        </nav>
        <div class="who">
          {session.open ? (
            <span class="badge warn" title="server.master_key is not set">
              Open: no master key configured
            </span>
          ) : (
            <span class="badge">{session.role === "admin" ? "Master key" : `Key ${session.key?.name ?? ""}`}</span>
          )}
          {!session.open && (
            <button
              type="button"
              onClick={() => {
                storeKey(null);
                setSession(null);
              }}
            >
              Sign out
            </button>
          )}
        </div>
      </header>
      <main class="page">
        {page === undefined ? (
          <section>
            <h1>Not available</h1>
            <p>
              {PAGES.some((p) => p.path === path)
                ? "This page needs the master key."
                : `There is no page “${path}”.`}{" "}
              <a href="#/playground">Open the playground</a>.
            </p>
          </section>
        ) : page.path === "playground" ? (
          <Playground session={session} />
        ) : page.path === "performance" ? (
          <Performance />
        ) : page.path === "models" ? (
          <Models />
        ) : page.path === "providers" ? (
          <Providers />
        ) : (
          <Requests />
        )}
      </main>
    </>
  );
}
