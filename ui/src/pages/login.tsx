import { useState } from "preact/hooks";

export function Login(props: { error: string | null; onKey: (key: string) => void }) {
  const [key, setKey] = useState("");
  return (
    <main class="page login">
      <h1>Turnout console</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (key.trim()) props.onKey(key.trim());
        }}
      >
        <label for="key">Master key or gateway key</label>
        <input
          id="key"
          type="password"
          autocomplete="off"
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
          required
        />
        <button type="submit">Sign in</button>
        {props.error && <p role="alert" class="error">Refused: {props.error}</p>}
        <p class="hint">
          The key stays in this tab's session storage and is sent as an Authorization header;
          it is forgotten when the tab closes.
        </p>
      </form>
    </main>
  );
}
