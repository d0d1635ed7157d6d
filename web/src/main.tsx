import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { ConvexProvider, ConvexReactClient } from "convex/react";
import { Auth } from "./auth";
import { App } from "./App";
import "./styles.css";

// Ripple serves this app and the sync API from one origin.
const client = new ConvexReactClient(window.location.origin, { skipConvexDeploymentUrlCheck: true });
const auth = new Auth(client);

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <ConvexProvider client={client}>
      <App auth={auth} />
    </ConvexProvider>
  </StrictMode>,
);
