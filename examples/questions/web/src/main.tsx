import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { RippleAuthProvider, RippleClient } from "@ripplehq/client";
import { App } from "./App";

// The server serves this app and the API from one origin (Vite's dev server proxies the API).
const client = new RippleClient(window.location.origin);

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <RippleAuthProvider client={client}>
      <App />
    </RippleAuthProvider>
  </StrictMode>,
);
