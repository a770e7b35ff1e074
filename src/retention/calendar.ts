/**
 * Local calendar time of a snapshot for the time-bucket policy (buckets.ts): the wall-clock
 * fields of a unix second in one IANA time zone, and the ISO week of a date. Pure given the
 * zone; the server's zone is the process's (`TZ` when set, else the system's), read once by
 * `systemTimeZone`.
 *
 * Contract:
 * - `zoneCalendar(zone)` refuses (`usage`) a zone the runtime does not know; its function
 *   answers the wall clock in that zone, so around a DST change two instants can share a
 *   wall-clock hour (fall back) and a wall-clock hour can have no instant (spring forward).
 * - `isoWeek` is ISO 8601's: weeks start on Monday, week 1 holds the year's first Thursday,
 *   so 2026-12-31 can be in week 1 of 2027 and 2027-01-01 in week 53 of 2026.
 */
import { EtcdsnapError } from '../errors.js';

/** The wall-clock fields of one instant in one zone. */
export interface LocalTime {
  year: number;
  /** 1-12. */
  month: number;
  /** 1-31. */
  day: number;
  /** 0-23. */
  hour: number;
  minute: number;
  second: number;
  /** The zone's offset from UTC at that instant, in minutes (+60 for CET, +120 for CEST). */
  offsetMinutes: number;
}

/** Unix seconds → wall-clock fields. */
export type Calendar = (unixSeconds: number) => LocalTime;

/** The process's time zone: `TZ` when set and known, else the system's (as `date` shows). */
export function systemTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** The calendar of IANA zone `zone` (e.g. `Europe/Berlin`, `UTC`); refuses an unknown zone. */
export function zoneCalendar(zone: string): Calendar {
  let fmt: Intl.DateTimeFormat;
  try {
    fmt = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      timeZoneName: 'longOffset',
    });
  } catch {
    throw new EtcdsnapError('usage', `unknown time zone ${JSON.stringify(zone)}: set TZ to an IANA zone such as UTC or Europe/Berlin`);
  }
  return (unixSeconds) => {
    const f: Record<string, string> = {};
    for (const p of fmt.formatToParts(new Date(unixSeconds * 1000))) f[p.type] = p.value;
    return {
      year: Number(f.year),
      month: Number(f.month),
      day: Number(f.day),
      hour: Number(f.hour),
      minute: Number(f.minute),
      second: Number(f.second),
      offsetMinutes: parseOffset(f.timeZoneName ?? 'GMT'),
    };
  };
}

/** `GMT`, `GMT+01:00`, `GMT-09:30` → minutes. */
function parseOffset(text: string): number {
  const m = /^GMT([+-])(\d{2}):(\d{2})$/.exec(text);
  if (!m) return 0;
  const minutes = Number(m[2]) * 60 + Number(m[3]);
  return m[1] === '-' ? -minutes : minutes;
}

/** ISO 8601 week-numbering year and week (1-53) of a calendar date. */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  const date = Date.UTC(year, month - 1, day);
  const weekday = (new Date(date).getUTCDay() + 6) % 7; // Monday 0 ... Sunday 6
  const thursday = new Date(date + (3 - weekday) * 86_400_000); // the week's Thursday decides its year
  const wy = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(wy, 0, 1)) / (7 * 86_400_000)) + 1;
  return { year: wy, week };
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** `2026-11-30 14:05:00 +01:00`: how a snapshot's time is shown beside its buckets. */
export function formatLocalTime(t: LocalTime): string {
  const sign = t.offsetMinutes < 0 ? '-' : '+';
  const off = Math.abs(t.offsetMinutes);
  return `${pad(t.year, 4)}-${pad(t.month)}-${pad(t.day)} ${pad(t.hour)}:${pad(t.minute)}:${pad(t.second)} ${sign}${pad(Math.floor(off / 60))}:${pad(off % 60)}`;
}

/** The bucket labels of a local time: `2026-11-30 14h`, `2026-11-30`, `2026-W49`, `2026-11`, `2026`. */
export function bucketLabels(t: LocalTime): { hourly: string; daily: string; weekly: string; monthly: string; yearly: string } {
  const w = isoWeek(t.year, t.month, t.day);
  const day = `${pad(t.year, 4)}-${pad(t.month)}-${pad(t.day)}`;
  return {
    hourly: `${day} ${pad(t.hour)}h`,
    daily: day,
    weekly: `${pad(w.year, 4)}-W${pad(w.week)}`,
    monthly: `${pad(t.year, 4)}-${pad(t.month)}`,
    yearly: pad(t.year, 4),
  };
}
