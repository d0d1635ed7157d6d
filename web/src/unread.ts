// Unread messages outside the thread: the total in the tab title, optional notifications.
import { useCallback, useEffect, useRef, useState } from "react";
import type { Conversation, User } from "./generated/api";
import { isGroup, otherParticipant, senderName } from "./conversations";
import { conversationPath, navigate } from "./router";

/** The total of unread messages in the tab title: "(3) Ripple Chat". */
export function useUnreadTitle(conversations: Conversation[] | undefined) {
  const total = conversations?.reduce((n, c) => n + c.unreadCount, 0) ?? 0;
  useEffect(() => {
    document.title = total > 0 ? `(${total > 99 ? "99+" : total}) Ripple Chat` : "Ripple Chat";
  }, [total]);
}

export const NOTIFY_KEY = "ripple.notify";

/**
 * Optional browser notifications: when switched on (the browser asks for permission), a message
 * from someone else that arrives while the tab is hidden shows a notification.
 */
export function useNotifications(conversations: Conversation[] | undefined, me: User | null) {
  const supported = typeof window !== "undefined" && "Notification" in window;
  const [enabled, setEnabled] = useState(
    () => supported && Notification.permission === "granted" && localStorage.getItem(NOTIFY_KEY) === "1",
  );
  const seen = useRef<Map<string, number> | null>(null);

  useEffect(() => {
    if (!conversations || !me) return;
    const previous = seen.current;
    const next = new Map<string, number>();
    for (const c of conversations) next.set(c._id, c.lastMessage?._creationTime ?? 0);
    seen.current = next;
    if (!previous || !enabled || document.visibilityState !== "hidden") return;
    for (const c of conversations) {
      const m = c.lastMessage;
      if (!m || m.senderId === me._id || m.kind === "system" || c.unreadCount === 0) continue;
      if ((previous.get(c._id) ?? 0) >= m._creationTime) continue;
      const from = isGroup(c) ? senderName(c, m.senderId) : (otherParticipant(c, me)?.name ?? "Someone");
      const title = isGroup(c) ? `New message in ${c.name ?? "a group"}` : `New message from ${from}`;
      const body = isGroup(c) ? `${from}: ${m.body}` : m.body;
      const n = new Notification(title, { body: body.slice(0, 140), tag: `conversation-${c._id}` });
      n.onclick = () => {
        window.focus();
        navigate(conversationPath(c._id));
      };
    }
  }, [conversations, me, enabled]);

  const [denied, setDenied] = useState(false);
  const toggle = useCallback(async () => {
    if (enabled) {
      localStorage.removeItem(NOTIFY_KEY);
      setEnabled(false);
      return;
    }
    const permission = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
    if (permission === "granted") {
      localStorage.setItem(NOTIFY_KEY, "1");
      setEnabled(true);
    }
    setDenied(permission === "denied");
  }, [enabled]);

  return { supported, enabled, denied, toggle: () => void toggle() };
}
