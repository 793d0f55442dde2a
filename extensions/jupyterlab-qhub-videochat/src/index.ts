/**
 * jupyterlab-qhub-videochat: a Jitsi Meet room in a JupyterLab main-area panel.
 *
 * The server extension says whether video chat is on and which rooms this user has (one per
 * group). When it is off, no command or launcher item is added and the reason goes to the console.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, showErrorMessage } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import { IVideoChatConfig, fetchConfig } from './api';
import { videoChatIcon } from './icon';
import { VideoChatPanel } from './panel';

const COMMAND = 'qhub-videochat:open';
const CATEGORY = 'Video Chat';

function addCommands(
  app: JupyterFrontEnd,
  config: IVideoChatConfig,
  launcher: ILauncher | null,
  palette: ICommandPalette | null
): void {
  let panel: VideoChatPanel | null = null;

  const showPanel = (): VideoChatPanel => {
    if (!panel || panel.isDisposed) {
      panel = new VideoChatPanel(config);
    }
    if (!panel.isAttached) {
      app.shell.add(panel, 'main');
    }
    app.shell.activateById(panel.id);
    return panel;
  };

  app.commands.addCommand(COMMAND, {
    label: args =>
      args.group
        ? `${args.group}`
        : args.private
          ? 'New private room'
          : 'Video Chat',
    caption: args =>
      args.group
        ? `Join the video chat room of group ${args.group}`
        : 'Open a Jitsi Meet video chat: your groups\u2019 rooms or an ad-hoc room',
    icon: videoChatIcon,
    describedBy: {
      args: {
        type: 'object',
        properties: {
          group: { type: 'string', description: 'Join the room of this group' },
          name: { type: 'string', description: 'Join the ad-hoc room of this name' },
          private: { type: 'boolean', description: 'Open a private room with a random name' }
        }
      }
    },
    execute: async (args: ReadonlyPartialJSONObject) => {
      const group = args.group as string | undefined;
      const name = args.name as string | undefined;
      const widget = showPanel();
      if (group) {
        const room = config.rooms.find(r => r.group === group);
        if (!room) {
          const mine = config.rooms.map(r => r.group).join(', ') || 'none';
          await showErrorMessage(
            'Video Chat',
            `You are not in group "${group}", so it has no room for you. Your groups: ${mine}.`
          );
          return;
        }
        await widget.join(room);
      } else if (name || args.private) {
        if (!config.allow_adhoc_rooms) {
          await showErrorMessage('Video Chat', 'Ad-hoc rooms are turned off on this server.');
          return;
        }
        await widget.joinAdhoc(name);
      }
    }
  });

  launcher?.add({ command: COMMAND, category: CATEGORY, rank: 0 });
  palette?.addItem({ command: COMMAND, category: CATEGORY });
  config.rooms.forEach((room, i) => {
    const args = { group: room.group };
    launcher?.add({ command: COMMAND, args, category: CATEGORY, rank: i + 1 });
    palette?.addItem({ command: COMMAND, args, category: CATEGORY });
  });
  if (config.allow_adhoc_rooms) {
    palette?.addItem({ command: COMMAND, args: { private: true }, category: CATEGORY });
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-qhub-videochat:plugin',
  description: 'Video chat (Jitsi Meet) in a JupyterLab panel, rooms per qhub group.',
  autoStart: true,
  optional: [ILauncher, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    launcher: ILauncher | null,
    palette: ICommandPalette | null
  ): void => {
    // Not awaited: the Lab must not wait for this request to start.
    fetchConfig()
      .then(config => {
        if (!config.enabled) {
          console.info(`qhub-videochat: ${config.reason}`);
          return;
        }
        addCommands(app, config, launcher, palette);
        console.info(
          `qhub-videochat: ready, Jitsi server ${config.jitsi_url}, ${config.rooms.length} group room(s)`
        );
      })
      .catch(error => {
        console.error('qhub-videochat: could not read the video chat config; video chat is off.', error);
      });
  }
};

export default plugin;
