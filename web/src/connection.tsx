// The connection to the server as people see it: a status banner, and whether actions that
// need the server can run.
import { useEffect, useRef, useState } from "react";
import { useConnectionState } from "@ripplehq/client";

/** Whether the server can be reached now; while not, actions that need it are disabled. */
export function useOnline(): boolean {
  const { state } = useConnectionState();
  return state === "connected" || state === "connecting";
}

export const OFFLINE_REASON = "You're offline. This needs a connection.";

/** A status line while the connection is down; says when it is back. */
export function ConnectionBanner() {
  const { state } = useConnectionState();
  const [recovered, setRecovered] = useState(false);
  const wasDown = useRef(false);
  useEffect(() => {
    if (state === "reconnecting" || state === "offline") {
      wasDown.current = true;
      setRecovered(false);
    } else if (state === "connected" && wasDown.current) {
      wasDown.current = false;
      setRecovered(true);
      const t = setTimeout(() => setRecovered(false), 4000);
      return () => clearTimeout(t);
    }
  }, [state]);
  let text = "";
  if (state === "offline") text = "You're offline. Messages you send will go out when you're back online.";
  else if (state === "reconnecting") text = "Connection lost. Reconnecting… Messages you send will go out once it's back.";
  else if (recovered) text = "Connected again.";
  return (
    <div role="status" className={`banner ${text ? (recovered ? "ok" : "down") : "hidden"}`} data-testid="connection-banner">
      {text}
    </div>
  );
}
