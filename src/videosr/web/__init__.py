"""`videosr serve`: a local web page over the library (Gradio, the ``videosr[web]`` extra).

* :mod:`.jobs`: the job store and queue (no Gradio): jobs and their outputs live under the ``--jobs`` folder,
  one job runs at a time by default, a job interrupted by a server restart resumes (the pipeline's resume
  state) when the server comes back.
* :mod:`.media`: probing uploads, model facts (Vid4 PSNR, measured speed, run-time estimate), previews.
* :mod:`.app`: the Gradio Blocks page (imported only by ``videosr serve``).
"""
