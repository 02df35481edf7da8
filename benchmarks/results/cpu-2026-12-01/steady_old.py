import sys, time, torch
sys.path.insert(0, "/tmp/oldtree")
from chargen import load_model, SampleConfig
from chargen.sample import Sampler
import chargen.chunked as ch
torch.set_num_threads(1)
m, v, _ = load_model("/work/main/checkpoints/shakespeare-gru/best.pt")
for name, compile_, scripted in (("python", False, False), ("script", False, True), ("inductor", True, False)):
    ch.SCRIPTED = scripted
    s = Sampler(m, v, SampleConfig(temperature=0.8, seed=1, compile=compile_))
    s.feed("The ")
    list(s.draw(3200, ahead=True))
    n = 40000
    t0 = time.perf_counter(); list(s.draw(n, ahead=True)); t = time.perf_counter() - t0
    print(f"old {name}: steady {n/t:,.0f} chars/s  {t/n*1e6:.1f} us/char", flush=True)
