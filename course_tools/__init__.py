"""Tools that build the course rather than teach it: the static website, the students' copies of the
notebooks (``make student``) and the working copies that ``make course`` opens. The notebooks never
import them; they import ``course_lib``.
"""
