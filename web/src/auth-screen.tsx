// Sign in and sign up.
import { useEffect, useState } from "react";
import type { FormEvent } from "react";
import type { UseAuth } from "@ripplehq/client";
import { describeError } from "./errors";

export function AuthScreen({ auth }: { auth: UseAuth }) {
  const [mode, setMode] = useState<"signin" | "signup">("signin");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const signup = mode === "signup";

  useEffect(() => {
    document.title = signup ? "Create your account · Ripple Chat" : "Sign in · Ripple Chat";
  }, [signup]);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      if (signup) await auth.signUp({ email: email.trim(), password, name: name.trim() });
      else await auth.signIn({ email: email.trim(), password });
    } catch (err) {
      setError(describeError(err, mode));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="auth">
      <form className="card" onSubmit={submit} aria-labelledby="auth-title">
        <h1 id="auth-title">{signup ? "Create your account" : "Sign in to Ripple Chat"}</h1>
        {signup && (
          <label>
            Name
            <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} autoComplete="name" />
          </label>
        )}
        <label>
          Email
          <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} required autoComplete="email" autoFocus />
        </label>
        <label>
          Password
          <input
            type="password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            required
            minLength={8}
            maxLength={128}
            autoComplete={signup ? "new-password" : "current-password"}
          />
        </label>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {signup ? "Sign up" : "Sign in"}
        </button>
        <p className="switch">
          {signup ? "Already have an account?" : "New here?"}{" "}
          <button
            type="button"
            className="link"
            onClick={() => {
              setMode(signup ? "signin" : "signup");
              setError(null);
            }}
          >
            {signup ? "Sign in" : "Create an account"}
          </button>
        </p>
      </form>
    </main>
  );
}
