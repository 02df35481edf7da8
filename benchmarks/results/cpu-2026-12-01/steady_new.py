import sys, time, torch
from chargen import load_model, SampleConfig
from chargen.sample import Sampler
torch.set_num_threads(1)
m, v, _ = load_model("checkpoints/shakespeare-gru/best.pt")
for compile_ in (False, True):
    s = Sampler(m, v, SampleConfig(temperature=0.8, seed=1, compile=compile_))
    s.feed("The ")
    t0 = time.perf_counter(); list(s.draw(3200, ahead=True)); t1 = time.perf_counter()
    n = 40000
    t0 = time.perf_counter(); list(s.draw(n, ahead=True)); t = time.perf_counter() - t0
    print(f"compile={compile_}: warm {t1-t0:.1f}s  steady {n/t:,.0f} chars/s  {t/n*1e6:.1f} us/char", flush=True)
