import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { RippleAuthProvider, RippleClient } from "@ripplehq/client";
import { App } from "./App";
import "./styles.css";

// Ripple serves this app and the sync API from one origin.
const client = new RippleClient(window.location.origin);

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <RippleAuthProvider client={client}>
      <App />
    </RippleAuthProvider>
  </StrictMode>,
);
