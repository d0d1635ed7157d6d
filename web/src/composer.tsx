// The composer: Enter sends, a counter near the limit, an over-long paste warns.
import { useRef, useState } from "react";
import type { ClipboardEvent, FormEvent, KeyboardEvent } from "react";
import { useOnline } from "./connection";
import { MAX_MESSAGE_LENGTH } from "./errors";

export function Composer({ onSend }: { onSend: (body: string) => void }) {
  const [body, setBody] = useState("");
  const [pasteWarning, setPasteWarning] = useState<string | null>(null);
  const input = useRef<HTMLTextAreaElement>(null);
  const text = body.trim();
  const length = [...text].length;
  const over = length - MAX_MESSAGE_LENGTH;
  const left = MAX_MESSAGE_LENGTH - [...body].length;
  const nearLimit = left <= 500;
  const online = useOnline();

  function submit(e?: FormEvent) {
    e?.preventDefault();
    if (text === "" || over > 0) return;
    onSend(text);
    setBody("");
    setPasteWarning(null);
    input.current?.focus();
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      submit();
    }
  }

  function onPaste(e: ClipboardEvent<HTMLTextAreaElement>) {
    const pasted = e.clipboardData.getData("text");
    const t = e.currentTarget;
    const after = [...t.value].length - [...t.value.slice(t.selectionStart, t.selectionEnd)].length + [...pasted].length;
    setPasteWarning(
      after > MAX_MESSAGE_LENGTH
        ? `That paste makes the message ${after.toLocaleString("en")} characters, over the ${MAX_MESSAGE_LENGTH.toLocaleString(
            "en",
          )} limit. Nothing was cut: shorten it or send it in parts.`
        : null,
    );
  }

  const describedBy = [nearLimit ? "composer-counter" : "", !online ? "composer-offline" : ""].filter(Boolean).join(" ");
  return (
    <form className="send" onSubmit={submit}>
      <label htmlFor="message-body" className="sr-only">
        Message
      </label>
      <textarea
        id="message-body"
        ref={input}
        rows={2}
        placeholder="Write a message (Enter to send, Shift+Enter for a new line)"
        value={body}
        onChange={(e) => {
          setBody(e.target.value);
          if ([...e.target.value].length <= MAX_MESSAGE_LENGTH) setPasteWarning(null);
        }}
        onKeyDown={onKeyDown}
        onPaste={onPaste}
        aria-describedby={describedBy || undefined}
        aria-invalid={over > 0 || undefined}
        // Not on phones: the keyboard would cover the conversation one just opened.
        autoFocus={window.matchMedia("(min-width: 701px)").matches}
      />
      <button type="submit" className="primary" disabled={text === "" || over > 0}>
        Send
      </button>
      {nearLimit && (
        <p id="composer-counter" className={`counter${left < 0 ? " over" : ""}`} data-testid="counter">
          {left >= 0
            ? `${left.toLocaleString("en")} character${left === 1 ? "" : "s"} left`
            : `${(-left).toLocaleString("en")} character${left === -1 ? "" : "s"} over the ${MAX_MESSAGE_LENGTH.toLocaleString("en")} limit`}
        </p>
      )}
      {!online && (
        <p id="composer-offline" className="hint">
          You're offline: what you send now shows as "Sending…" and goes out once you're back.
        </p>
      )}
      {pasteWarning && (
        <p className="error" role="alert">
          {pasteWarning}
        </p>
      )}
    </form>
  );
}
