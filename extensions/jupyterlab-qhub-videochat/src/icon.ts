import { LabIcon } from '@jupyterlab/ui-components';

const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16">
  <g class="jp-icon3" fill="#616161">
    <path d="M3 6.5A1.5 1.5 0 0 1 4.5 5h10A1.5 1.5 0 0 1 16 6.5v11a1.5 1.5 0 0 1-1.5 1.5h-10A1.5 1.5 0 0 1 3 17.5z"/>
    <path d="M17 10.2l4-2.7v9l-4-2.7z"/>
  </g>
</svg>`;

export const videoChatIcon = new LabIcon({
  name: 'jupyterlab-qhub-videochat:icon',
  svgstr
});
