import { createRoot } from 'react-dom/client';
import { LIST, LIVE_SSE } from './api.js';
import { ShapeView } from './ShapeView.jsx';
import { DbView } from './DbView.jsx';

function App() {
  return (
    <>
      <header>
        <h1>Shared todos <small>on Ampere</small></h1>
        <p>
          List <b data-testid="list-name">{LIST}</b>: everyone with this page open sees the same
          items, live{LIVE_SSE ? ' (over server-sent events)' : ''}. Open it in another window, or
          add <code>?list=another</code> for a private one.
        </p>
      </header>
      <main>
        <ShapeView />
        <DbView />
      </main>
    </>
  );
}

createRoot(document.getElementById('root')).render(<App />);
