// api.html's script: the embeddable module on its own, as another page would use it.
import { Samplediff } from "../dist/samplediff.js";

window.Samplediff = Samplediff;
window.apiReady = true;
