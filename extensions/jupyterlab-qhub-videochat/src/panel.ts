/**
 * The main-area panel: a room bar (group rooms, ad-hoc rooms) above the Jitsi Meet iframe.
 */
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { IRoom, IVideoChatConfig, openAdhocRoom } from './api';
import { videoChatIcon } from './icon';
import { IJitsiMeetExternalAPI, loadExternalAPI } from './jitsi';

export const PANEL_ID = 'qhub-videochat';

function button(label: string, className: string): HTMLButtonElement {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.className = `jp-Button jp-mod-styled ${className}`;
  return b;
}

export class VideoChatPanel extends Widget {
  constructor(private readonly config: IVideoChatConfig) {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-QHubVideoChat');
    this.title.label = 'Video Chat';
    this.title.icon = videoChatIcon;
    this.title.closable = true;

    const bar = document.createElement('div');
    bar.className = 'jp-QHubVideoChat-bar';
    for (const room of config.rooms) {
      const b = button(room.label, 'jp-QHubVideoChat-groupRoom');
      b.title = `Join the video chat room of group ${room.label}`;
      b.dataset.room = room.name;
      b.onclick = () => void this.join(room);
      bar.appendChild(b);
    }
    if (config.allow_adhoc_rooms) {
      const form = document.createElement('form');
      form.className = 'jp-QHubVideoChat-adhoc';
      this.nameInput = document.createElement('input');
      this.nameInput.className = 'jp-mod-styled';
      this.nameInput.placeholder = 'Room name';
      this.nameInput.setAttribute('aria-label', 'Ad-hoc room name');
      const joinNamed = button('Join', 'jp-mod-accept');
      joinNamed.type = 'submit';
      const joinPrivate = button('New private room', 'jp-QHubVideoChat-private');
      joinPrivate.title = 'A room with a random name; share its name to invite people';
      form.onsubmit = (event: Event) => {
        event.preventDefault();
        const name = this.nameInput!.value.trim();
        if (name) {
          void this.joinAdhoc(name);
        }
      };
      joinPrivate.onclick = () => void this.joinAdhoc();
      form.append(this.nameInput, joinNamed, joinPrivate);
      bar.appendChild(form);
    }
    this.leaveButton = button('Leave', 'jp-mod-warn jp-QHubVideoChat-leave');
    this.leaveButton.onclick = () => this.leave();
    bar.appendChild(this.leaveButton);

    this.status = document.createElement('div');
    this.status.className = 'jp-QHubVideoChat-status';
    this.meeting = document.createElement('div');
    this.meeting.className = 'jp-QHubVideoChat-meeting';
    this.node.append(bar, this.status, this.meeting);
    this.leave();
  }

  /** The room joined now, if any. */
  get room(): IRoom | null {
    return this._room;
  }

  async joinAdhoc(name?: string): Promise<void> {
    try {
      await this.join(await openAdhocRoom(name));
    } catch (error) {
      this.showError(error);
    }
  }

  async join(room: IRoom): Promise<void> {
    const attempt = ++this.attempts;
    this.setStatus(`Connecting to ${room.label}…`);
    let JitsiMeetExternalAPI;
    try {
      JitsiMeetExternalAPI = await loadExternalAPI(this.config.external_api_url!);
    } catch (error) {
      if (attempt === this.attempts) {
        this.showError(error);
      }
      return;
    }
    if (attempt !== this.attempts || this.isDisposed) {
      return; // another room was picked meanwhile
    }
    this.disposeMeeting();
    this.api = new JitsiMeetExternalAPI(this.config.jitsi_domain!, {
      roomName: room.name,
      parentNode: this.meeting,
      width: '100%',
      height: '100%',
      userInfo: { displayName: this.config.display_name ?? '' },
      configOverwrite: { subject: room.label }
    });
    this.api.addListener('readyToClose', () => this.leave());
    this._room = room;
    this.node.dataset.room = room.name;
    this.title.label = `Video Chat: ${room.label}`;
    this.leaveButton.disabled = false;
    this.setStatus(`In ${room.kind === 'group' ? 'group room' : 'room'} ${room.label} (${room.name}) as ${this.config.display_name}`);
  }

  leave(): void {
    this.attempts++;
    this.disposeMeeting();
    this._room = null;
    delete this.node.dataset.room;
    this.title.label = 'Video Chat';
    this.leaveButton.disabled = true;
    const hint = document.createElement('p');
    hint.className = 'jp-QHubVideoChat-hint';
    hint.textContent = this.config.rooms.length
      ? 'Pick the room of one of your groups above, or name a room to meet anyone who types the same name.'
      : 'Name a room above to meet anyone who types the same name, or open a private room and share its name.';
    this.meeting.replaceChildren(hint);
    this.setStatus('');
  }

  dispose(): void {
    if (!this.isDisposed) {
      this.disposeMeeting();
    }
    super.dispose();
  }

  protected onCloseRequest(msg: Message): void {
    this.disposeMeeting();
    super.onCloseRequest(msg);
    this.dispose();
  }

  private disposeMeeting(): void {
    if (this.api) {
      const api = this.api;
      this.api = null;
      api.dispose();
    }
    this.meeting.replaceChildren();
  }

  private setStatus(text: string): void {
    this.status.textContent = text;
    this.status.classList.remove('jp-mod-error');
  }

  private showError(error: unknown): void {
    this.status.textContent = error instanceof Error ? error.message : String(error);
    this.status.classList.add('jp-mod-error');
  }

  private api: IJitsiMeetExternalAPI | null = null;
  private _room: IRoom | null = null;
  private attempts = 0;
  private nameInput: HTMLInputElement | null = null;
  private readonly leaveButton: HTMLButtonElement;
  private readonly status: HTMLDivElement;
  private readonly meeting: HTMLDivElement;
}
