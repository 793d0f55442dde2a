/**
 * The server endpoints of the qhub_videochat server extension (see qhub_videochat/handlers.py).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface IRoom {
  /** The Jitsi room name, made safe and prefixed by the server. */
  name: string;
  /** What the user reads: the group name, or what they typed. */
  label: string;
  kind: 'group' | 'adhoc';
  group: string | null;
}

export interface IVideoChatConfig {
  enabled: boolean;
  /** Why video chat is off ('' when it is on). */
  reason: string;
  jitsi_url?: string;
  /** The `domain` argument of JitsiMeetExternalAPI: host[:port][/path]. */
  jitsi_domain?: string;
  external_api_url?: string;
  display_name?: string;
  room_prefix?: string;
  /** One room per group the user belongs to, and no other. */
  rooms: IRoom[];
  allow_adhoc_rooms: boolean;
}

async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'qhub-videochat', path);
  const response = await ServerConnection.makeRequest(url, init, settings);
  const text = await response.text();
  let data: any = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { message: text };
  }
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, data.message || text);
  }
  return data as T;
}

export function fetchConfig(): Promise<IVideoChatConfig> {
  return request<IVideoChatConfig>('config');
}

/** An ad-hoc room from a typed name; without a name, a private room with a random name. */
export function openAdhocRoom(name?: string): Promise<IRoom> {
  return request<IRoom>('rooms', {
    method: 'POST',
    body: JSON.stringify(name ? { name } : {})
  });
}
