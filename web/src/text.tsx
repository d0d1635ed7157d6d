// Message text: links made clickable, search words highlighted.
import type { ReactNode } from "react";

const urlPattern = /\bhttps?:\/\/[^\s<>"']+/gi;

/** Splits text into plain strings and http(s) links (trailing punctuation stays text). */
export function Linkified({ text, highlight = [] }: { text: string; highlight?: string[] }) {
  const out: ReactNode[] = [];
  let last = 0;
  for (const match of text.matchAll(urlPattern)) {
    let url = match[0];
    const trail = /[.,;:!?)\]]+$/.exec(url);
    if (trail) url = url.slice(0, -trail[0].length);
    const start = match.index!;
    if (start > last) out.push(<Highlighted key={`t${start}`} text={text.slice(last, start)} words={highlight} />);
    out.push(
      <a key={`a${start}`} href={url} target="_blank" rel="noopener noreferrer">
        <Highlighted text={url} words={highlight} />
      </a>,
    );
    last = start + url.length;
  }
  if (last < text.length) out.push(<Highlighted key={`t${last}`} text={text.slice(last)} words={highlight} />);
  return <>{out}</>;
}

/** The words of a search query worth highlighting. */
export function queryWords(query: string): string[] {
  return query
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter((w) => w.length >= 2)
    .slice(0, 20);
}

function escape(s: string) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Text with each occurrence of a word (or a word it begins, as "run" in "running") marked. */
export function Highlighted({ text, words }: { text: string; words: string[] }) {
  if (words.length === 0) return <>{text}</>;
  const pattern = new RegExp(`(${words.map(escape).join("|")})`, "giu");
  const parts = text.split(pattern);
  return (
    <>
      {parts.map((p, i) => (i % 2 === 1 ? <mark key={i}>{p}</mark> : p))}
    </>
  );
}
