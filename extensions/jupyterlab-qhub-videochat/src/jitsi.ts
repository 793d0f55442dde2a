/**
 * Loading the Jitsi Meet IFrame API (external_api.js) from the configured Jitsi server.
 */

/** The part of the IFrame API this extension uses. */
export interface IJitsiMeetExternalAPI {
  addListener(event: string, listener: (...args: any[]) => void): void;
  dispose(): void;
  getIFrame(): HTMLIFrameElement;
}

export interface IJitsiOptions {
  roomName: string;
  parentNode: HTMLElement;
  width: string;
  height: string;
  userInfo: { displayName: string };
  configOverwrite?: Record<string, unknown>;
}

export type JitsiMeetExternalAPIConstructor = new (
  domain: string,
  options: IJitsiOptions
) => IJitsiMeetExternalAPI;

declare global {
  interface Window {
    JitsiMeetExternalAPI?: JitsiMeetExternalAPIConstructor;
  }
}

const loading = new Map<string, Promise<JitsiMeetExternalAPIConstructor>>();

/** Load external_api.js once per URL; a failed load may be retried. */
export function loadExternalAPI(
  url: string
): Promise<JitsiMeetExternalAPIConstructor> {
  let promise = loading.get(url);
  if (!promise) {
    promise = new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = url;
      script.async = true;
      script.dataset.qhubVideochat = 'external-api';
      script.onload = () => {
        if (window.JitsiMeetExternalAPI) {
          resolve(window.JitsiMeetExternalAPI);
        } else {
          reject(
            new Error(
              `${url} loaded but did not define JitsiMeetExternalAPI: is this a Jitsi Meet server?`
            )
          );
        }
      };
      script.onerror = () => {
        script.remove();
        reject(
          new Error(
            `Could not load the Jitsi Meet API from ${url}: check that your browser can reach the Jitsi server.`
          )
        );
      };
      document.head.appendChild(script);
    });
    promise.catch(() => loading.delete(url));
    loading.set(url, promise);
  }
  return promise;
}
